"""Predictions files: one JSON object a line, at least ``{"id": ..., "response": ...}``.

The runner appends a line the moment an answer exists, so a killed run loses at most the line being
written. Reading tolerates exactly that: a last line without its newline that does not parse is
dropped (and cut off before anything is appended after it). A line anywhere else that does not parse
is an error, because it means the file was damaged, not interrupted. A line with an ``"error"`` is
a request that could not run; it counts as a wrong answer, and a rerun tries it again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PREDICTIONS_FILE = "predictions.jsonl"
RANK_FILE_GLOB = "predictions.rank*.jsonl"


class PredictionsError(ValueError):
    """A predictions file that cannot be read: the message names the file and line."""


def rank_file(out_dir: Path, rank: int) -> Path:
    """Where one data-parallel rank appends its predictions before rank 0 merges them."""
    return out_dir / f"predictions.rank{rank}.jsonl"


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every complete record; a torn last line is skipped."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if number == len(lines):  # the last line, with no newline after it: an interrupted write
                return
            raise PredictionsError(f"{path}: line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or "id" not in record:
            raise PredictionsError(f"{path}: line {number}: expected an object with an 'id'")
        if not isinstance(record.get("response", ""), str):
            raise PredictionsError(f"{path}: line {number}: 'response' must be a string")
        yield number, record


@dataclass
class PredictionSet:
    """The answer per sample id read from predictions files.

    Where an id appears more than once, the first answer that ran wins over any later one, and an
    answer wins over an error line (a rerun retries errors).
    """

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0

    def add(self, record: dict[str, Any]) -> None:
        key = str(record["id"])
        held = self.records.get(key)
        if held is None or ("error" in held and "error" not in record):
            self.records[key] = record
            if held is not None:
                self.duplicates += 1
        else:
            self.duplicates += 1

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
            for _, record in _lines(target):
                found.add(record)
    return found


def repair_tail(path: Path) -> None:
    """Make the file end with a newline, so what is appended next starts on a line of its own.

    A torn last line is cut off (its request runs again); a complete one just gets its newline.
    """
    if not path.is_file():
        return
    with path.open("r+b") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
        except (json.JSONDecodeError, UnicodeDecodeError):
            handle.truncate(start)
        else:
            handle.write(b"\n")


class PredictionLog:
    """Appends prediction records to a JSONL file, each flushed as soon as it is written."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._handle: IO[str] = self.path.open("a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def merge_rank_files(out_dir: Path) -> int:
    """Fold every rank's file into predictions.jsonl and delete it; returns the records added.

    Safe to repeat after a crash half way: records already in the main file are not added twice.
    """
    main = out_dir / PREDICTIONS_FILE
    held = read_predictions(main)
    done = held.done_ids()
    parts = sorted(out_dir.glob(RANK_FILE_GLOB))
    added = 0
    with PredictionLog(main) as log:
        for part in parts:
            for _, record in _lines(part):
                key = str(record["id"])
                if key in done or ("error" in record and key in held.records):
                    continue
                log.append(record)
                held.add(record)
                if "error" not in record:
                    done.add(key)
                added += 1
    for part in parts:
        part.unlink()
    return added
