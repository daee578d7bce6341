"""`univg cot review`: people check a task-stratified sample of the verified chains, as the paper did.

`write_review_page` draws the same share of each task's verified items (at least one per task) and
writes one self-contained HTML page: every image embedded, the ground-truth box drawn on the target
image (and the teacher's box, dashed), the question, the chain and the full answer, accept / reject
buttons with a note, and an export of the decisions as JSON (decisions also survive a reload in the
browser's local storage). `apply_decisions` folds an exported file back: rejected items become
"rejected" lines with reason ``review``, every item records its decision, and the acceptance rate is
reported per task.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from univg.core.errors import EXIT_USAGE, UnivgError
from univg.cot.request import image_data_url
from univg.data.files import check_output, write_jsonl_atomic, write_text_atomic
from univg.data.images import ImageLoadError
from univg.data.schema import REJECTED, STATUS_FIELD, VERIFIED, SampleError, read_records, resolve_image

DECISIONS_FORMAT = "univg-cot-review/1"
REVIEW_REASON = "review"
ACCEPT, REJECT = "accept", "reject"


class ReviewError(UnivgError, ValueError):
    """Input or decisions that cannot be used; the message names the file and what is wrong."""

    exit_code = EXIT_USAGE


def _read_lines_for(source: Path, target: Path, overwrite: bool) -> list[dict[str, Any]]:
    """The lines of `source`, once writing `target` is allowed (it does not exist, or `overwrite`)."""
    check_output(
        target, force=overwrite, option="overwrite"
    )  # links and devices are refused even with overwrite
    return _read_lines(source)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReviewError(f"{path}: no such file (the output of univg cot generate)")
    lines = []
    try:
        for number, record in read_records(path):
            if not isinstance(record, dict) or "id" not in record or STATUS_FIELD not in record:
                raise ReviewError(
                    f"{path}: line {number} is not a univg cot generate line (needs id and status)"
                )
            lines.append(record)
    except SampleError as exc:
        raise ReviewError(str(exc)) from None
    return lines


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stratified_sample(lines: list[dict[str, Any]], share: float, seed: int) -> list[dict[str, Any]]:
    """`share` of each task's verified lines (rounded up, so every task is seen), in file order."""
    if not 0 < share <= 1:
        raise ReviewError(f"--sample must be in (0, 1], got {share}")
    by_task: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        if line[STATUS_FIELD] == VERIFIED:
            by_task.setdefault(str(line.get("task")), []).append(index)
    rng = random.Random(seed)
    chosen: list[int] = []
    for task in sorted(by_task):
        indices = by_task[task]
        chosen += rng.sample(indices, math.ceil(share * len(indices)))
    return [lines[i] for i in sorted(chosen)]


def _item(line: dict[str, Any], root: Path) -> dict[str, Any]:
    generation = line.get("extra", {}).get("cot_generation", {})
    chosen = generation.get("chosen")
    candidates = generation.get("candidates") or []
    response = (
        candidates[chosen]["response"] if isinstance(chosen, int) and chosen < len(candidates) else None
    )
    images = []
    for path in line["images"]:
        try:
            images.append(image_data_url(resolve_image(path, root)))
        except ImageLoadError as exc:
            raise ReviewError(f"item {line['id']}: {exc}; pass --image-root DIR") from None
    return {
        "id": line["id"],
        "task": line.get("task"),
        "question": line.get("question"),
        "images": images,
        "target_image": line.get("target_image"),
        "box": line.get("box"),
        "teacher_box": generation.get("answer_box"),
        "iou": generation.get("iou"),
        "chain": line.get("cot"),
        "response": response,
    }


@dataclass
class ReviewPage:
    path: Path
    items: int
    by_task: dict[str, int]


def write_review_page(
    input_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    share: float,
    seed: int = 0,
    image_root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> ReviewPage:
    """Write the review page of a stratified sample of `input_path`'s verified lines."""
    source, target = Path(input_path), Path(out)
    lines = _read_lines_for(source, target, overwrite)
    sample = stratified_sample(lines, share, seed)
    if not sample:
        raise ReviewError(f"{source}: no verified lines to review")
    root = Path(image_root) if image_root is not None else source.parent
    data = {
        "format": DECISIONS_FORMAT,
        "input": str(source),
        "input_sha256": _sha256(source),
        "share": share,
        "seed": seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "items": [_item(line, root) for line in sample],
    }
    template = (resources.files("univg.cot") / "review_page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    write_text_atomic(target, template.replace("/*REVIEW_DATA*/", payload))
    by_task: dict[str, int] = {}
    for line in sample:
        by_task[str(line.get("task"))] = by_task.get(str(line.get("task")), 0) + 1
    return ReviewPage(target, len(sample), by_task)


class _Acceptance:
    """What follows from how many were reviewed and how many of those accepted."""

    reviewed: int
    accepted: int

    @property
    def rejected(self) -> int:
        return self.reviewed - self.accepted

    @property
    def rate(self) -> float | None:
        return self.accepted / self.reviewed if self.reviewed else None


@dataclass
class TaskReview(_Acceptance):
    reviewed: int = 0
    accepted: int = 0


@dataclass
class ReviewReport(_Acceptance):
    out: Path
    tasks: dict[str, TaskReview] = field(default_factory=dict)
    undecided: int = 0  # items of the page without a decision

    @property
    def reviewed(self) -> int:
        return sum(t.reviewed for t in self.tasks.values())

    @property
    def accepted(self) -> int:
        return sum(t.accepted for t in self.tasks.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "reviewed": self.reviewed,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "acceptance_rate": self.rate,
            "undecided": self.undecided,
            "tasks": {
                name: {**asdict(t), "rejected": t.rejected, "acceptance_rate": t.rate}
                for name, t in self.tasks.items()
            },
        }

    def table(self) -> str:
        """The acceptance rate per task, as a Markdown table."""
        rows = ["| task | reviewed | accepted | acceptance |", "|---|---|---|---|"]
        for name, task in sorted(self.tasks.items()):
            rows.append(f"| {name} | {task.reviewed} | {task.accepted} | {100 * (task.rate or 0):.2f}% |")
        rows.append(f"| all | {self.reviewed} | {self.accepted} | {100 * (self.rate or 0):.2f}% |")
        if self.undecided:
            rows.append(f"\n{self.undecided} items of the page have no decision and stay as they were.")
        return "\n".join(rows)


def _read_decisions(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReviewError(f"{path}: no such decisions file (export it from the review page)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReviewError(f"{path}: not JSON: {exc}") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != DECISIONS_FORMAT
        or not isinstance(data.get("decisions"), dict)
    ):
        raise ReviewError(
            f"{path}: not a decisions file exported from univg cot review (format {DECISIONS_FORMAT})"
        )
    decisions: dict[str, dict[str, str]] = {}
    for item_id, entry in data["decisions"].items():
        decision = entry.get("decision") if isinstance(entry, dict) else None
        if decision not in (ACCEPT, REJECT):
            raise ReviewError(f"{path}: item {item_id!r}: field 'decision' must be {ACCEPT!r} or {REJECT!r}")
        decisions[str(item_id)] = {"decision": decision, "note": str(entry.get("note") or "")}
    return data, decisions


def apply_decisions(
    input_path: str | os.PathLike[str],
    decisions_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> ReviewReport:
    """Write `out`: `input_path` with the decisions folded in; returns the per-task acceptance report."""
    source, target = Path(input_path), Path(out)
    lines = _read_lines_for(source, target, overwrite)
    data, decisions = _read_decisions(Path(decisions_path))
    by_id = {line["id"]: line for line in lines}
    for item_id in decisions:
        if item_id not in by_id:
            raise ReviewError(f"{decisions_path}: item {item_id!r} is not in {source}")
        if by_id[item_id][STATUS_FIELD] != VERIFIED:
            raise ReviewError(
                f"{decisions_path}: item {item_id!r} is {by_id[item_id][STATUS_FIELD]} in {source}, not verified"
            )
    report = ReviewReport(target)
    listed = [str(item_id) for item_id in data.get("items") or []]  # the page's items, decided or not
    report.undecided = sum(1 for item_id in listed if item_id not in decisions)
    written = []
    for line in lines:
        decision = decisions.get(line["id"])
        if decision is None:
            written.append(line)
            continue
        task = report.tasks.setdefault(str(line.get("task")), TaskReview())
        task.reviewed += 1
        extra = {**line.get("extra", {}), "review": dict(decision)}
        if decision["decision"] == ACCEPT:
            task.accepted += 1
            written.append({**line, "extra": extra})
            continue
        extra["review"]["chain"] = line.get("cot")
        rejected = {
            "id": line["id"],
            STATUS_FIELD: REJECTED,
            "reason": REVIEW_REASON,
            "detail": decision["note"] or "rejected in review",
        }
        rejected.update({k: v for k, v in line.items() if k not in (STATUS_FIELD, "cot", "reason", "detail")})
        rejected["extra"] = extra
        written.append(rejected)
    write_jsonl_atomic(target, written)
    write_text_atomic(
        target.with_name(target.name + ".review.json"), json.dumps(report.to_json(), indent=2) + "\n"
    )
    return report
