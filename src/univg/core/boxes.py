"""Boxes and coordinate systems.

Canonical boxes are floats in 0..1 relative to the *target* image, (x1, y1, x2, y2) with x1 < x2 and
y1 < y2. Models speak other systems: Qwen2-VL writes integers in 0..1000, Qwen2.5-VL writes absolute
pixels of the image as resized by its processor. We convert only at the edges (prompt building and
parsing), so everything in between compares like with like.

`iou` is the only IoU in the project: rewards, metrics and reports all call it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

QWEN2VL_SCALE = 1000


class CoordSystem(str, Enum):
    """How a model writes box coordinates."""

    NORMALIZED = "normalized"  # floats 0..1 (our canonical form)
    QWEN2VL = "qwen2vl"  # integers 0..1000
    PIXELS = "pixels"  # absolute pixels of a given (resized) image, Qwen2.5-VL

    @classmethod
    def parse(cls, value: str | CoordSystem) -> CoordSystem:
        """Accept an enum member or its name, with the aliases users type (`qwen25vl`)."""
        if isinstance(value, CoordSystem):
            return value
        aliases = {"qwen25vl": cls.PIXELS, "qwen2.5vl": cls.PIXELS, "qwen2_5_vl": cls.PIXELS}
        key = value.strip().lower()
        if key in aliases:
            return aliases[key]
        try:
            return cls(key)
        except ValueError:
            names = ", ".join([m.value for m in cls] + sorted(aliases))
            raise ValueError(f"unknown coordinate system {value!r}; expected one of: {names}") from None


@dataclass(frozen=True)
class Box:
    """A canonical box: floats in 0..1 relative to the target image."""

    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Box:
        """Build from any four-number sequence, in the canonical system."""
        if len(values) != 4:
            raise ValueError(f"a box needs 4 numbers, got {len(values)}: {list(values)!r}")
        return cls(*(float(v) for v in values))

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def clip(self) -> Box:
        """Clamp every coordinate into 0..1 (ordering is left as it is)."""
        return Box(*(min(1.0, max(0.0, v)) for v in self.as_tuple()))

    def problem(self) -> str | None:
        """Why this box is not a valid canonical box, or None when it is."""
        return box_problem(self.as_tuple(), limit=1.0)

    @property
    def is_valid(self) -> bool:
        return self.problem() is None

    def to(self, system: CoordSystem | str, size: tuple[int, int] | None = None) -> tuple[float, ...]:
        """This box in another coordinate system (see `from_normalized`)."""
        return from_normalized(self.as_tuple(), system, size)


def box_problem(box: Sequence[float], limit: float = 1.0) -> str | None:
    """The reason a box is invalid in a system whose coordinates run 0..limit, or None when valid.

    Reasons are short, stable strings ("not finite", "inverted", "degenerate", "out of range") so a
    validator can count them by kind.
    """
    if len(box) != 4:
        return f"wrong length: expected 4 numbers, got {len(box)}"
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return "not numeric"
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return "not finite"
    if x1 > x2 or y1 > y2:
        return "inverted"
    if x1 == x2 or y1 == y2:
        return "degenerate"
    if min(x1, y1) < 0 or max(x2, y2) > limit:
        return "out of range"
    return None


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes given in one coordinate system.

    Degenerate, inverted, non-finite or malformed boxes give 0.0, never an exception or NaN: a model's
    bad answer must score zero, not crash a training step.
    """
    try:
        ax1, ay1, ax2, ay2 = (float(v) for v in a)
        bx1, by1, bx2, by2 = (float(v) for v in b)
    except (TypeError, ValueError):
        return 0.0
    values = (ax1, ay1, ax2, ay2, bx1, by1, bx2, by2)
    if not all(math.isfinite(v) for v in values):
        return 0.0
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    if ax2 <= ax1 or ay2 <= ay1 or bx2 <= bx1 or by2 <= by1:
        return 0.0
    inter_w = min(ax2, bx2) - max(ax1, bx1)
    inter_h = min(ay2, by2) - max(ay1, by1)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = area_a + area_b - inter
    if not math.isfinite(union) or union <= 0:
        return 0.0
    return max(0.0, min(1.0, inter / union))


def _scales(system: CoordSystem, size: tuple[int, int] | None) -> tuple[float, float]:
    if system is CoordSystem.NORMALIZED:
        return 1.0, 1.0
    if system is CoordSystem.QWEN2VL:
        return float(QWEN2VL_SCALE), float(QWEN2VL_SCALE)
    if size is None:
        raise ValueError("pixel coordinates need the (width, height) of the image they refer to")
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {size!r}")
    return float(width), float(height)


def to_normalized(
    box: Sequence[float], system: CoordSystem | str, size: tuple[int, int] | None = None
) -> tuple[float, float, float, float]:
    """Convert a box written in `system` to canonical 0..1 floats.

    `size` is the (width, height) the pixel coordinates refer to (for Qwen2.5-VL: the resized image).
    """
    sx, sy = _scales(CoordSystem.parse(system), size)
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1 / sx, y1 / sy, x2 / sx, y2 / sy)


def from_normalized(
    box: Sequence[float], system: CoordSystem | str, size: tuple[int, int] | None = None
) -> tuple[float, ...]:
    """Convert a canonical box to `system`, as the model would write it.

    Qwen2-VL and pixel coordinates are rounded to integers (that is what the models emit); normalized
    stays float.
    """
    parsed = CoordSystem.parse(system)
    sx, sy = _scales(parsed, size)
    x1, y1, x2, y2 = (float(v) for v in box)
    scaled = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
    if parsed is CoordSystem.NORMALIZED:
        return scaled
    return tuple(round(v) for v in scaled)


def box_to_pixels(box: Sequence[float], original_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A canonical box in (unrounded) pixels of the original image, for drawing and for users."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = original_size
    return (x1 * width, y1 * height, x2 * width, y2 * height)


def coordinate_limit(system: CoordSystem | str, size: tuple[int, int] | None = None) -> tuple[float, float]:
    """The largest x and y a box may have in `system` (1, 1000 or the image size)."""
    return _scales(CoordSystem.parse(system), size)
