"""Reward functions in TRL's contract: ``(completions, **dataset_columns) -> list[float]``.

TRL passes every dataset column as a keyword argument, one value per completion. Completions are
plain strings (standard format) or lists of chat messages (conversational format); both work.

Columns read by `accuracy_reward`:
- ``solution``: the ground truth, canonical normalized 0..1 relative to the target image (required).
- ``coords``: the coordinate system the model writes ("qwen2vl" when absent).
- ``image_size``: (width, height) of the resized target image, needed only for pixel coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from univg.core.boxes import CoordSystem, iou
from univg.core.parsing import ParseMode, is_loose_format, is_strict_format, read_box


def completion_text(completion: Any) -> str:
    """The generated text of one completion, whichever format TRL hands over."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content", ""))
    if isinstance(completion, Sequence):
        parts = [completion_text(message) for message in completion]
        return "".join(parts)
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _column(values: Sequence[Any] | None, index: int, default: Any) -> Any:
    if values is None:
        return default
    value = values[index]
    return default if value is None else value


def box_iou(
    text: str,
    gt_box: Sequence[float],
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    image_size: Sequence[int] | None = None,
    mode: ParseMode = "answer",
) -> float:
    """IoU of the box a response gives (written in `coords`) with a canonical ground-truth box."""
    predicted = read_box(text, mode, coords, image_size)
    return 0.0 if predicted is None else iou(predicted, gt_box)


def accuracy_reward(
    completions: Sequence[Any],
    solution: Sequence[Sequence[float]],
    coords: Sequence[str] | None = None,
    image_size: Sequence[Sequence[int] | None] | None = None,
    **_: Any,
) -> list[float]:
    """IoU between the answer box and the ground truth; 0 when no box can be read from the answer."""
    return [
        box_iou(
            completion_text(completion),
            solution[i],
            _column(coords, i, CoordSystem.QWEN2VL.value),
            _column(image_size, i, None),
        )
        for i, completion in enumerate(completions)
    ]


def format_reward(completions: Sequence[Any], **_: Any) -> list[float]:
    """1.0 when the whole response is ``<think>...</think><answer>(x1, y1), (x2, y2)</answer>``, else 0.0."""
    return [1.0 if is_strict_format(completion_text(c)) else 0.0 for c in completions]


def format_loose_reward(completions: Sequence[Any], **_: Any) -> list[float]:
    """The format reward that also accepts ``[x1, y1, x2, y2]``, box tags and words around the box."""
    return [1.0 if is_loose_format(completion_text(c)) else 0.0 for c in completions]


REWARD_FUNCTIONS = {"accuracy": accuracy_reward, "format": format_reward, "format_loose": format_loose_reward}
