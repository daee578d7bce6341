"""LISA reasoning-segmentation grounding (UniVG-R1's ``lisa_val.json`` / ``lisa_test.json``).

Each record: image_path, instruction, boxes (a list of pixel boxes). Like the official evaluation, the
first box is the target; how many there were is kept in ``extra["num_boxes"]``.
"""

from __future__ import annotations

from typing import Any

from univg.data.formats.base import BAD_FIELD, FormatSpec, RecordContext
from univg.data.formats.zero_shot import pixel_box, single_image_fields, single_image_sample
from univg.data.schema import GroundingSample

SOURCE = "lisa"


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    image, instruction, boxes = single_image_fields(record, ctx, "instruction", "boxes")
    box = None
    if boxes is not None:
        if isinstance(boxes[0], list | str):
            box = pixel_box(boxes[0], "boxes[0]", image, ctx)
        else:
            ctx.add(BAD_FIELD, "boxes", f"expected a list of boxes, got {boxes!r:.80}")
    if not ctx.ok or box is None or image is None or instruction is None:
        return []
    return [single_image_sample(ctx, image, instruction, box, len(boxes))]


FORMAT = FormatSpec(
    name=SOURCE,
    description="LISA grounding (UniVG-R1 zero-shot): image_path, instruction, boxes in pixels",
    read=read,
    needs_images=True,
)
