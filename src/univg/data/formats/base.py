"""What every reader shares: problem kinds, the per-record checking context, and the format entry.

A reader turns one record (a JSON object: the driver refuses anything else) into grounding samples.
It never stops at the first thing wrong: it reports every problem it finds through
`RecordContext.add` (each with a kind from `PROBLEM_KINDS`, the field it is in, and a message with the
offending value), and returns no sample for a record with problems. The driver
(`univg.data.convert`) counts and lists them.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from univg.core.boxes import CoordSystem, box_problem, to_normalized
from univg.core.parsing import extract_boxes, image_references
from univg.data.images import ImageLoadError, MissingImageError, list_frames, probe_image
from univg.data.prompts import COT_SUFFIX, SIMPLE_REFERENCE_PREFIX
from univg.data.schema import GroundingSample, ImagePathError, resolve_image

INVALID_RECORD = "invalid record"
MISSING_FIELD = "missing field"
BAD_FIELD = "bad field"
MISSING_IMAGE = "missing image"
UNREADABLE_IMAGE = "unreadable image"
MALFORMED_BOX = "malformed box"
MULTIPLE_BOXES = "multiple boxes"
INVERTED_BOX = "inverted box"
DEGENERATE_BOX = "degenerate box"
OUT_OF_RANGE_BOX = "out-of-range box"
UNRESOLVABLE_TARGET = "unresolvable target image"
IMAGE_TAG_MISMATCH = "image-tag count mismatch"

# Every kind a validator may count, in the order reports list them.
PROBLEM_KINDS: tuple[str, ...] = (
    INVALID_RECORD,
    MISSING_FIELD,
    BAD_FIELD,
    MISSING_IMAGE,
    UNREADABLE_IMAGE,
    MALFORMED_BOX,
    MULTIPLE_BOXES,
    INVERTED_BOX,
    DEGENERATE_BOX,
    OUT_OF_RANGE_BOX,
    UNRESOLVABLE_TARGET,
    IMAGE_TAG_MISMATCH,
)

_BOX_REASON_KINDS = {"inverted": INVERTED_BOX, "degenerate": DEGENERATE_BOX, "out of range": OUT_OF_RANGE_BOX}
# Pixel annotations may overshoot the border by rounding; more than this is a real error.
PIXEL_TOLERANCE = 1.0
IMAGE_TAG = "<image>"
_NUMBER_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_CACHE_SIZE = 65_536


@dataclass(frozen=True)
class RecordProblem:
    """One thing wrong with a record: its kind (for counting), the field, and what exactly."""

    kind: str
    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "field": self.field, "message": self.message}


@dataclass
class ReadOptions:
    """How much a reader checks beyond the annotations themselves."""

    image_root: Path | None = None  # with a root, every image must exist and be readable
    decode_images: bool = False  # decode every image fully (finds truncated files; slow)


class _LRU(OrderedDict):
    """A small bounded cache: many records name the same image or video."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class ImageInspector:
    """Existence, readability and size of images and frame folders under a root, cached."""

    def __init__(self, options: ReadOptions) -> None:
        self.root = options.image_root
        self.decode = options.decode_images
        self._sizes: _LRU = _LRU()
        self._folders: _LRU = _LRU(4096)

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def size(self, path: str) -> tuple[int, int] | RecordProblem:
        """(width, height) of an image, or the problem with it."""
        if path in self._sizes:
            self._sizes.move_to_end(path)
            return self._sizes[path]
        try:
            result: tuple[int, int] | RecordProblem = probe_image(
                resolve_image(path, self.root), decode=self.decode
            )
        except MissingImageError as exc:
            result = RecordProblem(MISSING_IMAGE, "", f"{exc.path}: not found")
        except ImageLoadError as exc:
            result = RecordProblem(UNREADABLE_IMAGE, "", str(exc))
        except ImagePathError as exc:
            result = RecordProblem(BAD_FIELD, "", exc.message)
        return self._sizes.remember(path, result)

    def frames(self, folder: str) -> list[str] | RecordProblem:
        """The frame files of a video folder (relative to the root), in playback order."""
        if folder in self._folders:
            return self._folders[folder]
        result: list[str] | RecordProblem
        try:
            directory = resolve_image(folder, self.root)
        except ImagePathError as exc:
            return self._folders.remember(folder, RecordProblem(BAD_FIELD, "", exc.message))
        if not directory.is_dir():
            result = RecordProblem(MISSING_IMAGE, "", f"{directory}: frame folder not found")
        else:
            try:
                result = [f"{folder}/{frame.name}" for frame in list_frames(directory)]
            except OSError as exc:
                result = RecordProblem(UNREADABLE_IMAGE, "", f"{directory}: {exc.strerror or exc}")
        return self._folders.remember(folder, result)


def numbers_in(text: str) -> list[float]:
    """Every number written in a string such as ``"[12, 34.5, 56, 78]"``."""
    return [float(value) for value in _NUMBER_RE.findall(text)]


def clean_question(text: str) -> str:
    """A question without image tags and without the prompt wording our builder adds itself."""
    question = text.replace(IMAGE_TAG, "").strip()
    suffix = COT_SUFFIX.strip()
    if question.endswith(suffix):
        question = question[: -len(suffix)].rstrip()
    if question.startswith(SIMPLE_REFERENCE_PREFIX):
        question = question[len(SIMPLE_REFERENCE_PREFIX) :].lstrip()
    return question


def last_reference(*texts: str | None) -> int | None:
    """The last image named in the first text that names any (0-based), or None."""
    for text in texts:
        refs = image_references(text) if text else []
        if refs:
            return refs[-1]
    return None


def named_or_only(named: int | None, num_images: int) -> int | None:
    """The image a text names, else the only image: a record with one image needs no name."""
    return 0 if named is None and num_images == 1 else named


def _show(values: Any) -> str:
    text = repr(values)
    return text if len(text) <= 120 else text[:117] + "..."


class RecordContext:
    """Checks for one record; collects every problem instead of stopping at the first."""

    def __init__(self, index: int, inspector: ImageInspector, source_path: str, format_name: str) -> None:
        self.index = index
        self.inspector = inspector
        self.source_path = source_path
        self.format_name = format_name  # every sample read names it as its source
        self.problems: list[RecordProblem] = []

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, field_name: str, message: str) -> None:
        self.problems.append(RecordProblem(kind, field_name, message))

    def record(self, value: Any) -> dict[str, Any] | None:
        """The record itself, which must be a JSON object."""
        if isinstance(value, dict):
            return value
        self.add(INVALID_RECORD, "", f"expected a JSON object, got {type(value).__name__}")
        return None

    def sample(
        self,
        task: str,
        images: Sequence[str],
        question: str,
        target_image: int,
        box: tuple[float, float, float, float],
        *,
        turn: int | None = None,
        extra: dict[str, Any] | None = None,
        **fields: Any,
    ) -> GroundingSample:
        """A sample of this record, named by its position (``"{position}-{turn}"`` for one turn of a
        dialogue, which also goes into ``extra["turn"]``, where trainers find the turns again) and
        sourced from its format."""
        extra = dict(extra or {})
        if turn is not None:
            extra = {"turn": turn, **extra}
        return GroundingSample(
            id=str(self.index) if turn is None else f"{self.index}-{turn}",
            task=task,
            source=self.format_name,
            images=list(images),
            question=question,
            target_image=target_image,
            box=box,
            extra=extra,
            **fields,
        )

    def field(
        self,
        record: dict[str, Any],
        name: str,
        kind: type | tuple[type, ...],
        *,
        required: bool = True,
        allow_empty: bool = False,
    ) -> Any:
        """`record[name]` if present and of the right type (and non-empty unless allowed), else None."""
        if name not in record or record[name] is None:
            if required:
                self.add(MISSING_FIELD, name, "missing")
            return None
        value = record[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            expected = " or ".join(t.__name__ for t in _as_tuple(kind))
            self.add(BAD_FIELD, name, f"expected {expected}, got {type(value).__name__}: {_show(value)}")
            return None
        if (
            not allow_empty
            and isinstance(value, str | list | dict)
            and not (value.strip() if isinstance(value, str) else value)
        ):
            self.add(BAD_FIELD, name, "empty")
            return None
        return value

    def first_of(self, record: dict[str, Any], names: Sequence[str], kind: type | tuple[type, ...]) -> Any:
        """The first of several alternative field names that is present (formats vary in naming)."""
        for name in names:
            if name in record:
                return self.field(record, name, kind)
        self.add(MISSING_FIELD, names[0], f"missing (also looked for {', '.join(names[1:])})")
        return None

    def image_list(self, record: dict[str, Any], name: str) -> list[str] | None:
        """A non-empty list of image paths; with an image root, each must exist and be readable."""
        images = self.field(record, name, list)
        if images is None:
            return None
        if not all(isinstance(p, str) and p.strip() for p in images):
            self.add(BAD_FIELD, name, f"expected a list of paths, got {_show(images)}")
            return None
        for position, path in enumerate(images):
            self.check_image(path, f"{name}[{position}]")
        return images

    def check_image(self, path: str, field_name: str) -> tuple[int, int] | None:
        """The image's size; a problem (and None) when it is missing or unreadable; None unchecked."""
        if not self.inspector.enabled:
            return None
        result = self.inspector.size(path)
        if isinstance(result, RecordProblem):
            self.add(result.kind, field_name, result.message)
            return None
        return result

    def image_size(self, path: str) -> tuple[int, int] | None:
        """Size of an image already checked by `image_list`/`check_image` (no second report)."""
        if not self.inspector.enabled:
            return None
        result = self.inspector.size(path)
        return None if isinstance(result, RecordProblem) else result

    def box_values(self, values: Any, field_name: str) -> list[float] | None:
        """Four finite numbers from a list (numbers or numeric strings) or a string."""
        if isinstance(values, str):
            numbers: list[Any] = numbers_in(values)
        elif isinstance(values, list | tuple):
            numbers = list(values)
        else:
            self.add(MALFORMED_BOX, field_name, f"expected 4 numbers, got {_show(values)}")
            return None
        try:
            parsed = [float(v) for v in numbers if not isinstance(v, bool)]
        except OverflowError:  # an integer past any float
            self.add(MALFORMED_BOX, field_name, f"a number too large for a float: {_show(values)}")
            return None
        except (TypeError, ValueError):
            parsed = []
        if len(parsed) != 4 or len(numbers) != 4:
            self.add(MALFORMED_BOX, field_name, f"expected 4 numbers, got {_show(values)}")
            return None
        if not all(math.isfinite(v) for v in parsed):
            self.add(MALFORMED_BOX, field_name, f"not finite: {_show(values)}")
            return None
        return parsed

    def single_box(self, text: str, field_name: str) -> tuple[float, float, float, float] | None:
        """The one box an answer text writes, as written; a problem when there is none or several."""
        found = extract_boxes(text)
        if not found:
            self.add(MALFORMED_BOX, field_name, f"no box in the answer: {_show(text)}")
            return None
        if len(found) > 1:
            self.add(MULTIPLE_BOXES, field_name, f"{len(found)} boxes in one answer (multi-object grounding)")
            return None
        return found[0]

    def answer_box(self, text: str, field_name: str) -> tuple[float, float, float, float] | None:
        """The one Qwen2-VL (0..1000) box an answer text writes, canonical; None with the problem noted."""
        written = self.single_box(text, field_name)
        return self.box(written, field_name, CoordSystem.QWEN2VL) if written is not None else None

    def box(
        self,
        values: Any,
        field_name: str,
        coords: CoordSystem,
        size: tuple[int, int] | None = None,
    ) -> tuple[float, float, float, float] | None:
        """A box converted to canonical 0..1, or None with the problem recorded.

        Pixel boxes need the image `size`; without it (no image root) only the checks that need no
        size run and None is returned without a problem.
        """
        numbers = self.box_values(values, field_name)
        if numbers is None:
            return None
        if coords is CoordSystem.PIXELS:
            if min(numbers) < -PIXEL_TOLERANCE:
                self.add(OUT_OF_RANGE_BOX, field_name, f"negative pixel coordinates: {_show(values)}")
                return None
            numbers = [max(v, 0.0) for v in numbers]
            if not self._box_ok(numbers, math.inf, field_name, "pixels"):
                return None
            if size is None:
                return None
            width, height = size
            limits = (width, height, width, height)
            if any(v > limit + PIXEL_TOLERANCE for v, limit in zip(numbers, limits, strict=True)):
                self.add(
                    OUT_OF_RANGE_BOX, field_name, f"{_show(values)} exceeds the image size {width}x{height}"
                )
                return None
            clamped = [min(max(v, 0.0), limit) for v, limit in zip(numbers, limits, strict=True)]
            box = to_normalized(clamped, CoordSystem.PIXELS, size)
            return box if self._box_ok(box, 1.0, field_name, "after clamping to the image") else None
        limit = 1.0 if coords is CoordSystem.NORMALIZED else 1000.0
        if not self._box_ok(numbers, limit, field_name, f"0..{limit:g}"):
            return None
        return to_normalized(numbers, coords)

    def _box_ok(self, numbers: Sequence[float], limit: float, field_name: str, system: str) -> bool:
        reason = box_problem(numbers, limit=limit)
        if reason is None:
            return True
        kind = _BOX_REASON_KINDS.get(reason, MALFORMED_BOX)
        self.add(kind, field_name, f"{reason} ({system}): {_show(list(numbers))}")
        return False

    def target(self, index: int | None, num_images: int, field_name: str, text: str = "") -> int | None:
        """A resolved target index, checked against the number of images."""
        if index is None:
            shown = f": {_show(text)}" if text else ""
            self.add(UNRESOLVABLE_TARGET, field_name, f"names no image{shown}")
            return None
        if not 0 <= index < num_images:
            self.add(
                UNRESOLVABLE_TARGET,
                field_name,
                f"names image {index + 1} but the record has {num_images} image(s)",
            )
            return None
        return index

    def image_tags(self, count: int, num_images: int, field_name: str) -> bool:
        """Whether the number of ``<image>`` tags matches the number of images."""
        if count == num_images:
            return True
        self.add(IMAGE_TAG_MISMATCH, field_name, f"{count} <image> tag(s) for {num_images} image(s)")
        return False


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


Reader = Callable[[dict[str, Any], RecordContext], list[GroundingSample]]


@dataclass(frozen=True)
class FormatSpec:
    """A registered input format: its name, what it is, and its reader."""

    name: str
    description: str
    read: Reader
    needs_images: bool = False  # boxes in pixels or frames listed from folders: convert needs the images
    own_ids: bool = False  # records carry their own ids (else a sample's id is its record's position)
