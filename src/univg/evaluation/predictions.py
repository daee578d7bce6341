"""Predictions files: one JSON object a line, at least ``{"id": ..., "response": ...}``.

The runner appends a line the moment an answer exists, so a killed run loses at most the line being
written. Reading tolerates exactly that: a last line without its newline that does not parse is
dropped (and cut off before anything is appended after it). A line anywhere else that does not parse
is an error, because it means the file was damaged, not interrupted. A line with an ``"error"`` is
a request that could not run; it counts as a wrong answer, and a rerun tries it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from univg.core.errors import UnivgError
from univg.data.files import AppendLog
from univg.data.jsonstream import JSONLineError, parse_json_line

PREDICTIONS_FILE = "predictions.jsonl"
RANK_FILE_GLOB = "predictions.rank*.jsonl"


class PredictionsError(UnivgError, ValueError):
    """A predictions file that cannot be read: the message names the file and line."""


def rank_file(out_dir: Path, rank: int) -> Path:
    """Where one data-parallel rank appends its predictions before rank 0 merges them."""
    return out_dir / f"predictions.rank{rank}.jsonl"


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every complete record; a torn last line is skipped.

    A record must be an object with an ``id`` (a string or an integer: a float such as 3.0 would
    match no sample and silently count as missing) and a string ``response``, or an ``error``.
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = parse_json_line(raw)
        except JSONLineError as exc:
            if number == len(lines):  # the last line, with no newline after it: an interrupted write
                return
            raise PredictionsError(str(exc), path=path, record=f"line {number}") from None
        where = {"path": path, "record": f"line {number}"}
        if not isinstance(record, dict) or "id" not in record:
            raise PredictionsError("expected an object with an 'id'", **where)
        key = record["id"]
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise PredictionsError(
                f"must be a string or an integer, got {type(key).__name__} {key!r} (it would match no sample)",
                field="id",
                **where,
            )
        if "response" not in record and "error" not in record:
            raise PredictionsError(
                "missing (a line without an answer would count as an empty one)", field="response", **where
            )
        if not isinstance(record.get("response", ""), str):
            raise PredictionsError("must be a string", field="response", **where)
        yield number, record


@dataclass
class PredictionSet:
    """The answer per sample id read from predictions files.

    An answer wins over an error line for the same id (a rerun retries errors), and the same answer
    twice counts once; two different answers for one id are refused (`PredictionsError` naming both
    lines), since keeping either would score a choice nobody made.
    """

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    lines: dict[str, str] = field(default_factory=dict)  # id -> where its kept record is

    def add(self, record: dict[str, Any], where: str = "") -> None:
        key = str(record["id"])
        held = self.records.get(key)
        if held is None or ("error" in held and "error" not in record):
            self.records[key] = record
            self.lines[key] = where
            if held is not None:
                self.duplicates += 1
            return
        self.duplicates += 1
        if "error" not in record and record.get("response") != held.get("response"):
            raise PredictionsError(
                f"id {key!r} has two different answers, at {self.lines[key] or 'an earlier line'} and {where}; "
                "keep one of them"
            )

    def done_ids(self) -> set[str]:
        """Ids with an answer: a resumed run skips these (and retries the ones that errored)."""
        return {key for key, record in self.records.items() if "error" not in record}

    def errors(self) -> dict[str, str]:
        return {key: str(r["error"]) for key, r in self.records.items() if "error" in r}

    def response(self, sample_id: str) -> str | None:
        record = self.records.get(sample_id)
        return None if record is None else str(record.get("response") or "")


def read_predictions(*paths: str | os.PathLike[str]) -> PredictionSet:
    """Every record of the given files (missing files are skipped), as one set."""
    found = PredictionSet()
    for path in paths:
        target = Path(path)
        if target.is_file():
            for number, record in _lines(target):
                found.add(record, f"{target} line {number}")
    return found


def merge_rank_files(out_dir: Path) -> int:
    """Fold every rank's file into predictions.jsonl and delete it; returns the records added.

    Safe to repeat after a crash half way: records already in the main file are not added twice.
    """
    parts = sorted(out_dir.glob(RANK_FILE_GLOB))
    if not parts:
        return 0
    main = out_dir / PREDICTIONS_FILE
    held = read_predictions(main)
    done = held.done_ids()
    added = 0
    with AppendLog(main) as log:
        for part in parts:
            for number, record in _lines(part):
                key = str(record["id"])
                if key in done or ("error" in record and key in held.records):
                    continue
                log.append(record)
                held.add(record, f"{part} line {number}")
                if "error" not in record:
                    done.add(key)
                added += 1
    for part in parts:
        part.unlink()
    return added
