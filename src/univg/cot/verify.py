"""Verification of a teacher's chain: what a kept chain must pass before it becomes training data.

Four checks, each with a stable reason string that summaries count by:
- ``format``: the whole response is ``<think>...</think><answer>(x1, y1), (x2, y2)</answer>`` (the
  paper's strict format, `univg.core.parsing.is_strict_format`);
- ``box_mismatch``: the answer box has IoU >= the threshold with the ground truth (the teacher was
  given the box: a different one means it did not follow the prompt or misread the images);
- ``leak``: the reasoning does not write a box, any of the ground-truth coordinates, or words that
  give away that the answer was known (the model must learn to reason, not to copy);
- ``wrong_image``: the image the response names, when it names one, is the target (the same rule and
  parser as the image-checked benchmark score).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from univg.core.boxes import CoordSystem, from_normalized, iou
from univg.core.parsing import extract_boxes, extract_target_image, is_strict_format
from univg.core.rewards import read_box
from univg.data.schema import GroundingSample

FORMAT = "format"
BOX_MISMATCH = "box_mismatch"
LEAK = "leak"
WRONG_IMAGE = "wrong_image"
CHECKS = (FORMAT, BOX_MISMATCH, LEAK, WRONG_IMAGE)
DEFAULT_IOU_THRESHOLD = 0.5

# Words that only a chain written from the answer would use (lower case).
LEAK_PHRASES = (
    "ground truth",
    "ground-truth",
    "coordinate",
    "bounding box",
    "given box",
    "provided box",
    "box given",
    "box provided",
    "given answer",
    "known answer",
    "answer was given",
    "answer is given",
)
_NUMBER_RE = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
# How close a number in the reasoning must be to a ground-truth coordinate to count as that coordinate,
# and the smallest Qwen2-VL value that counts (small integers are counts and image numbers).
_TOLERANCE = {CoordSystem.QWEN2VL: 2.0, CoordSystem.NORMALIZED: 0.005}
_QWEN2VL_MIN_LEAK = 10


@dataclass(frozen=True)
class Verdict:
    """The result of verifying one response against its sample."""

    reason: str | None  # the first failed check, None when verified
    detail: str
    think: str | None  # the reasoning, stripped (None when the response has no think block)
    answer_box: tuple[float, float, float, float] | None  # canonical 0..1
    iou: float
    named_image: int | None
    failed: tuple[str, ...] = field(default=())  # every failed check, in CHECKS order

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        return {
            "failed": list(self.failed),
            "iou": round(self.iou, 4),
            "answer_box": None if self.answer_box is None else [round(v, 5) for v in self.answer_box],
            "named_image": self.named_image,
        }


def reasoning(response: str) -> str | None:
    """The text inside the first ``<think>`` block, stripped, or None."""
    match = _THINK_RE.search(response or "")
    return match.group(1).strip() if match else None


def find_leak(think: str, box: tuple[float, ...], coords: CoordSystem | str) -> str | None:
    """What in `think` gives the answer away (a box, a ground-truth coordinate, a tell-tale phrase), or None.

    `box` is the canonical ground truth; `coords` the system the teacher was shown it in.
    """
    system = CoordSystem.parse(coords)
    written = extract_boxes(think)
    if written:
        return f"the reasoning writes a box {written[0]}"
    shown = [float(v) for v in from_normalized(box, system)]
    tolerance = _TOLERANCE.get(system, 0.0)
    for match in _NUMBER_RE.finditer(think):
        text = match.group(0)
        value = float(text)
        if system is CoordSystem.QWEN2VL and (value < _QWEN2VL_MIN_LEAK or "." in text):
            continue
        if system is CoordSystem.NORMALIZED and "." not in text:
            continue
        if any(abs(value - coordinate) <= tolerance for coordinate in shown):
            return f"the reasoning writes {text}, a coordinate of the answer box"
    lowered = think.lower()
    for phrase in LEAK_PHRASES:
        if phrase in lowered:
            return f"the reasoning says {phrase!r}"
    return None


def verify_response(
    response: str,
    sample: GroundingSample,
    *,
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
) -> Verdict:
    """Run every check on a teacher response; the verdict's reason is the first that failed."""
    text = response if isinstance(response, str) else ""
    think = reasoning(text)
    answer_box = read_box(text, "answer", coords)
    overlap = iou(answer_box, sample.box) if answer_box is not None else 0.0
    named = extract_target_image(text)
    problems: dict[str, str] = {}
    if not is_strict_format(text):
        problems[FORMAT] = "not <think>...</think><answer>(x1, y1), (x2, y2)</answer>"
    if overlap < iou_threshold:
        problems[BOX_MISMATCH] = (
            f"answer box IoU {overlap:.2f} with the ground truth < {iou_threshold}"
            if answer_box is not None
            else "no box in the answer"
        )
    leak = find_leak(think, sample.box, coords) if think else None
    if leak:
        problems[LEAK] = leak
    if named is not None and len(sample.images) > 1 and named not in sample.accepted_images:
        problems[WRONG_IMAGE] = f"names image {named + 1}, the object is in image {sample.target_image + 1}"
    failed = tuple(check for check in CHECKS if check in problems)
    first = failed[0] if failed else None
    return Verdict(
        reason=first,
        detail=problems[first] if first else "",
        think=think,
        answer_box=answer_box,
        iou=overlap,
        named_image=named,
        failed=failed,
    )
