"""The one grounding sample schema, and its JSON Lines form on disk.

Every reader converts its format into `GroundingSample`; every consumer (trainers, evaluation,
predictor, demo) reads only this. The box is canonical: floats 0..1 relative to the target image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from univg.core.boxes import box_problem
from univg.core.errors import UnivgError
from univg.data.files import atomic_write, check_input
from univg.data.jsonstream import JSONLineError, parse_json_line

REQUIRED_FIELDS = ("id", "task", "source", "images", "question", "target_image", "box")
# Lines written by `univg cot generate` carry a status: "verified" (a checked chain) or "rejected".
STATUS_FIELD = "status"
VERIFIED = "verified"
REJECTED = "rejected"


class SampleError(UnivgError, ValueError):
    """A record that cannot be a grounding sample; the message names file, record and field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        record: int | str | None = None,
        field_name: str | None = None,
        option: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.field_name = field_name
        self.reason = message
        super().__init__(message, path=path, record=record, field=field_name, option=option, hint=hint)


@dataclass
class GroundingSample:
    """One grounding problem: find `box` in `images[target_image]` given `question`."""

    id: str
    task: str
    source: str
    images: list[str]
    question: str
    target_image: int
    box: tuple[float, float, float, float]
    cot: str | None = None
    frame_indices: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target_path(self) -> str:
        return self.images[self.target_image]

    @property
    def accepted_images(self) -> list[int]:
        """Images the box is right in: the target, or every image of a pair with the same geometry
        (a reader lists those in ``extra["target_images"]``, as MIG-Bench's diff task does)."""
        return [int(i) for i in self.extra.get("target_images", [self.target_image])]

    def problem(self) -> tuple[str, str] | None:
        """(field, reason) for the first thing wrong with this sample, or None when it is usable."""
        if not self.images:
            return "images", "no images"
        if not 0 <= self.target_image < len(self.images):
            return "target_image", f"index {self.target_image} outside {len(self.images)} images"
        if not self.question.strip():
            return "question", "empty question"
        reason = box_problem(self.box)
        if reason is not None:
            return "box", reason
        return None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "task": self.task,
            "source": self.source,
            "images": list(self.images),
            "question": self.question,
            "target_image": self.target_image,
            "box": [float(v) for v in self.box],
        }
        if self.cot is not None:
            record["cot"] = self.cot
        if self.frame_indices is not None:
            record["frame_indices"] = list(self.frame_indices)
        if self.extra:
            record["extra"] = self.extra
        return record

    @classmethod
    def from_json(
        cls, record: Any, *, path: str | None = None, index: int | str | None = None
    ) -> GroundingSample:
        """Build from a canonical record; a missing or mistyped field raises `SampleError` naming it."""
        if not isinstance(record, dict):
            raise SampleError("record is not a JSON object", path=path, record=index)
        for name in REQUIRED_FIELDS:
            if name not in record:
                raise SampleError("missing field", path=path, record=index, field_name=name)
        images = record["images"]
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            raise SampleError("must be a list of paths", path=path, record=index, field_name="images")
        box = record["box"]
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise SampleError("must be 4 numbers", path=path, record=index, field_name="box")
        try:
            box_values = tuple(float(v) for v in box)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SampleError(f"not 4 numbers: {exc}", path=path, record=index, field_name="box") from None
        try:
            target = int(record["target_image"])
        except (TypeError, ValueError, OverflowError) as exc:
            raise SampleError(
                f"not an index: {exc}", path=path, record=index, field_name="target_image"
            ) from None
        return cls(
            id=str(record["id"]),
            task=str(record["task"]),
            source=str(record["source"]),
            images=list(images),
            question=str(record["question"]),
            target_image=target,
            box=box_values,  # type: ignore[arg-type]
            cot=record.get("cot"),
            frame_indices=record.get("frame_indices"),
            extra=dict(record.get("extra") or {}),
        )


def write_jsonl(samples: Iterable[GroundingSample], path: str | os.PathLike[str]) -> int:
    """Write samples as JSON Lines (atomically: a failed or killed write leaves no file and no
    temporary behind). Returns the count."""
    count = 0
    with atomic_write(path) as handle:
        for sample in samples:
            handle.write(json.dumps(sample.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


def read_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Stream (line number, parsed JSON) from a JSON Lines file; a bad line raises `SampleError`."""
    source = check_input(path)
    with source.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = parse_json_line(line)
            except JSONLineError as exc:
                raise SampleError(str(exc), path=str(path), record=f"line {line_number}") from None
            yield line_number, record


def is_rejected(record: Any) -> bool:
    """A line that `univg cot generate` rejected: a valid sample whose chain must not be trained on."""
    return isinstance(record, dict) and record.get(STATUS_FIELD) == REJECTED


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[GroundingSample]:
    """Stream samples from a canonical JSON Lines file; bad lines raise `SampleError` with their line."""
    for line_number, record in read_records(path):
        yield GroundingSample.from_json(record, path=str(path), index=f"line {line_number}")


class ImagePathError(SampleError):
    """An image path that leads out of its image root (through ``..``): refused, never followed."""


def resolve_image(path: str, image_root: str | os.PathLike[str] | None) -> Path:
    """A sample's image path made absolute against `image_root` (absolute paths stay as they are).

    A relative path must stay inside the root: one that climbs out of it (``../../etc/x.png``) raises
    `ImagePathError`, so a data set cannot make univg read, and send to a teacher or a report, files
    outside the folder the user gave.
    """
    candidate = Path(path)
    if candidate.is_absolute() or image_root is None:
        return candidate
    if os.path.normpath(candidate).split(os.sep)[0] == os.pardir:
        raise ImagePathError(
            f"image path {path!r} leads outside the image root {str(image_root)!r}",
            option="image_root",
            hint="image paths are relative to {option} and may not climb out of it",
        )
    return Path(image_root) / candidate
