"""Reading any supported format into grounding samples: validation reports and JSON Lines conversion.

The one public way in to the format readers. Records stream one at a time (memory stays flat on
MGrounding's 630k records); every bad record is reported with its index, field and problem kind,
and reading never stops at the first one.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from univg.core.errors import UsageError
from univg.core.text import unencodable
from univg.data.files import check_input, check_output
from univg.data.formats import FORMAT_NAMES, get_format
from univg.data.formats.base import (
    BAD_FIELD,
    INVALID_RECORD,
    PROBLEM_KINDS,
    ImageInspector,
    ReadOptions,
    RecordContext,
    RecordProblem,
)
from univg.data.jsonstream import BadJSON, JsonRecords, JSONStreamError
from univg.data.schema import GroundingSample, resolve_image, write_jsonl

# progress(bytes_read, total_bytes), called every few hundred records.
ProgressFn = Callable[[int, int], None]
PROGRESS_EVERY = 256


@dataclass
class BadRecord:
    """A record with at least one problem, by its 0-based position in the input."""

    index: int
    problems: list[RecordProblem]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "problems": [p.to_json() for p in self.problems]}


@dataclass
class Report:
    """What reading a file found: counts, problems by kind, and the bad records themselves."""

    format: str
    path: str
    images_checked: bool
    max_listed: int | None = None  # bad records kept for listing (None: all); counts are always exact
    records: int = 0
    valid: int = 0
    samples: int = 0
    problem_counts: Counter[str] = field(default_factory=Counter)
    bad_records: list[BadRecord] = field(default_factory=list)
    unlisted: int = 0
    fatal: str | None = None
    output: str | None = None

    @property
    def invalid(self) -> int:
        return self.records - self.valid

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and self.fatal is None

    def add_bad(self, index: int, problems: list[RecordProblem]) -> None:
        self.problem_counts.update(p.kind for p in problems)
        if self.max_listed is None or len(self.bad_records) < self.max_listed:
            self.bad_records.append(BadRecord(index, problems))
        else:
            self.unlisted += 1

    def sorted_counts(self) -> list[tuple[str, int]]:
        order = {kind: position for position, kind in enumerate(PROBLEM_KINDS)}
        return sorted(self.problem_counts.items(), key=lambda item: order.get(item[0], len(order)))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": self.path,
            "images_checked": self.images_checked,
            "records": self.records,
            "valid": self.valid,
            "invalid": self.invalid,
            "samples": self.samples,
            "problems": dict(self.sorted_counts()),
            "bad_records": [bad.to_json() for bad in self.bad_records],
            "unlisted_bad_records": self.unlisted,
            "fatal": self.fatal,
            "output": self.output,
            "ok": self.ok,
        }

    def render(self) -> str:
        """The report as text for people: summary, counts per kind, then each bad record."""
        checked = "images checked" if self.images_checked else "images not checked: no image root"
        lines = [
            f"{self.format} {self.path}: {self.records} records, {self.valid} valid, {self.invalid} invalid, "
            f"{self.samples} samples; {checked}"
        ]
        if self.fatal:
            lines.append(f"stopped: {self.fatal}")
        if self.problem_counts:
            width = max(len(kind) for kind in self.problem_counts)
            lines.append("problems:")
            lines.extend(f"  {kind:<{width}}  {count}" for kind, count in self.sorted_counts())
            lines.append("bad records:")
            for bad in self.bad_records:
                for problem in bad.problems:
                    where = f" {problem.field}:" if problem.field else ""
                    lines.append(f"  record {bad.index}:{where} {problem.kind}: {problem.message}")
            if self.unlisted:
                lines.append(f"  ... and {self.unlisted} more bad records not listed")
        if self.output:
            lines.append(f"wrote {self.samples} samples to {self.output}")
        return "\n".join(lines)


def _absolute_images(sample: GroundingSample, root: Path) -> GroundingSample:
    sample.images = [str(resolve_image(path, root)) for path in sample.images]
    return sample


def read_samples(
    format_name: str,
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    decode_images: bool = False,
    relative_paths: bool = False,
    report: Report | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[GroundingSample]:
    """Stream the valid samples of a file in any supported format.

    With `image_root`, every image is checked (exists, readable, size known) and sample paths are
    joined to the root unless `relative_paths`. Bad records are skipped, and counted in `report`
    when one is given. A broken JSON array raises `JSONStreamError` (also noted in the report).
    """
    spec = get_format(format_name)
    root = Path(image_root) if image_root is not None else None
    if root is not None:
        check_input(root, kind="folder", option="image_root")
    inspector = ImageInspector(ReadOptions(image_root=root, decode_images=decode_images))
    records = JsonRecords(path)
    source = str(path)
    seen_ids: dict[str, int] | None = {} if spec.own_ids else None  # positions are unique already
    index = -1
    try:
        for index, raw in records:
            ctx = RecordContext(index, inspector, source, spec.name)
            record = None
            if isinstance(raw, BadJSON):
                ctx.add(INVALID_RECORD, "", raw.message)
            else:
                record = ctx.record(raw)
            samples = spec.read(record, ctx) if record is not None else []
            samples = _checked_samples(samples, ctx, seen_ids)
            if report is not None:
                report.records += 1
                if ctx.ok:
                    report.valid += 1
                    report.samples += len(samples)
                else:
                    report.add_bad(index, ctx.problems)
            if progress is not None and index % PROGRESS_EVERY == 0:
                progress(records.bytes_read, records.total_bytes)
            for sample in samples:
                if root is not None:
                    size = ctx.image_size(sample.target_path)
                    if size is not None:
                        sample.extra["target_size"] = list(size)
                    if not relative_paths:
                        _absolute_images(sample, root)
                yield sample
        if index < 0:
            raise JSONStreamError("holds no records (an empty file or an empty array)", path=source)
    except JSONStreamError as exc:
        if report is not None:
            report.fatal = str(exc)
        raise
    if progress is not None:
        progress(records.total_bytes, records.total_bytes)


def _checked_samples(
    samples: list[GroundingSample], ctx: RecordContext, seen_ids: dict[str, int] | None
) -> list[GroundingSample]:
    """What every format's samples must also be: ids unique in the file, text that can be written.

    A record whose samples fail either gets the problem and gives no sample, so what `validate`
    accepts is exactly what `convert` writes.
    """
    for sample in samples:
        if seen_ids is not None and sample.id in seen_ids:
            ctx.add(BAD_FIELD, "id", f"{sample.id!r} is already the id of record {seen_ids[sample.id]}")
        problem = _unwritable_field(sample)
        if problem is not None:
            ctx.add(BAD_FIELD, *problem)
    if not ctx.ok:
        return []
    if seen_ids is not None:
        seen_ids.update(dict.fromkeys((sample.id for sample in samples), ctx.index))
    return samples


def _unwritable_field(sample: GroundingSample) -> tuple[str, str] | None:
    """(field, why) for the first field whose text cannot be written as UTF-8, or None."""
    record = sample.to_json()
    if unencodable(json.dumps(record, ensure_ascii=False)) is None:
        return None
    for name, value in record.items():
        # A text field is checked as itself, so the position counts its own characters.
        problem = unencodable(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        if problem is not None:
            return name, problem
    return None


def validate_file(
    format_name: str,
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    decode_images: bool = False,
    max_listed: int | None = None,
    progress: ProgressFn | None = None,
) -> Report:
    """Check every record of a file; the report says what is wrong with each bad one."""
    report = Report(format_name, str(path), images_checked=image_root is not None, max_listed=max_listed)
    try:
        for _ in read_samples(
            format_name,
            path,
            image_root=image_root,
            decode_images=decode_images,
            report=report,
            progress=progress,
        ):
            pass
    except JSONStreamError:
        pass  # recorded in report.fatal
    return report


def convert_file(
    format_name: str,
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    force: bool = False,
    decode_images: bool = False,
    relative_paths: bool = False,
    max_listed: int | None = None,
    progress: ProgressFn | None = None,
) -> Report:
    """Write the valid samples of a file as canonical JSON Lines; the report lists the rest.

    Refuses to overwrite `out` unless `force`. Formats with pixel boxes or frame folders need
    `image_root` (their boxes cannot be normalised without the image sizes). A broken JSON array
    writes nothing and sets `report.fatal`.
    """
    spec = get_format(format_name)
    if spec.needs_images and image_root is None:
        raise UsageError(
            f"format {spec.name} gives pixel boxes or frame folders, so converting it needs the images",
            option="image_root",
            hint="pass {option}, the folder its image paths are relative to",
        )
    source = check_input(path)
    target = check_output(out, force=force)
    if target.exists() and target.resolve() == source.resolve():
        raise UsageError("is the input file; write the output elsewhere", path=target)
    report = Report(format_name, str(path), images_checked=image_root is not None, max_listed=max_listed)
    samples = read_samples(
        format_name,
        path,
        image_root=image_root,
        decode_images=decode_images,
        relative_paths=relative_paths,
        report=report,
        progress=progress,
    )
    try:
        write_jsonl(samples, target)
    except JSONStreamError:
        return report
    report.output = str(target)
    return report


__all__ = [
    "FORMAT_NAMES",
    "PROBLEM_KINDS",
    "BadRecord",
    "Report",
    "convert_file",
    "read_samples",
    "validate_file",
]
