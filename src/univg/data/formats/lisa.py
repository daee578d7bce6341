"""LISA reasoning-segmentation grounding (UniVG-R1's ``lisa_val.json`` / ``lisa_test.json``).

Each record: image_path, instruction, boxes (a list of pixel boxes). Like the official evaluation, the
first box is the target; how many there were is kept in ``extra["num_boxes"]``.
"""

from __future__ import annotations

from typing import Any

from univg.data.formats.base import BAD_FIELD, FormatSpec, RecordContext
from univg.data.formats.zero_shot import pixel_box, single_image_sample
from univg.data.schema import GroundingSample

SOURCE = "lisa"


def read(raw: Any, ctx: RecordContext) -> list[GroundingSample]:
    record = ctx.record(raw)
    if record is None:
        return []
    image = ctx.field(record, "image_path", str)
    instruction = ctx.field(record, "instruction", str)
    boxes = ctx.field(record, "boxes", list)
    if image is not None:
        ctx.check_image(image, "image_path")
    box = None
    if boxes is not None:
        if isinstance(boxes[0], list | str):
            box = pixel_box(boxes[0], "boxes[0]", image, ctx)
        else:
            ctx.add(BAD_FIELD, "boxes", f"expected a list of boxes, got {boxes!r:.80}")
    if not ctx.ok or box is None or image is None or instruction is None:
        return []
    return [single_image_sample(ctx.index, SOURCE, image, instruction, box, len(boxes))]


FORMAT = FormatSpec(
    name=SOURCE,
    description="LISA grounding (UniVG-R1 zero-shot): image_path, instruction, boxes in pixels",
    read=read,
    needs_images=True,
)
