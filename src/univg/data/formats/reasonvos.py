"""ReasonVOS grounding (UniVG-R1's ``ReasonVOS_eval.json``).

Each record: image_list (six sampled frame paths), question, bbox_list (one pixel box per frame,
written as strings such as ``"[12, 34, 56, 78]"``). The official script grounds the third frame and
reads its box's digits with ``\\d+`` (which splits decimals); here every number is read whole.
"""

from __future__ import annotations

from typing import Any

from univg.data.formats.base import FormatSpec, RecordContext
from univg.data.formats.zero_shot import target_frame_box, video_question
from univg.data.images import VIDEO_TARGET_FRAME
from univg.data.schema import GroundingSample

SOURCE = "reasonvos"


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    images = ctx.image_list(record, "image_list")
    question = ctx.field(record, "question", str)
    boxes = ctx.field(record, "bbox_list", list)
    target = ctx.target(VIDEO_TARGET_FRAME, len(images), "image_list") if images is not None else None
    box = None
    if boxes is not None and target is not None:
        box = target_frame_box(boxes, target, images[target], ctx)
    if not ctx.ok or box is None or target is None or question is None:
        return []
    return [
        ctx.sample(SOURCE, images, video_question(question), target, box, extra={"instruction": question})
    ]


FORMAT = FormatSpec(
    name=SOURCE,
    description="ReasonVOS (UniVG-R1 zero-shot): image_list of 6 frames, question, bbox_list strings",
    read=read,
    needs_images=True,
)
