"""LLMSeg grounding (UniVG-R1's ``LLMSeg_eval.json``).

Each record: image_path (under the LLMSeg images folder), question, bbox (pixels, nested:
``[[x1, y1, x2, y2]]``, flattened by the official script and read the same way here).
"""

from __future__ import annotations

from typing import Any

from univg.data.formats.base import FormatSpec, RecordContext
from univg.data.formats.zero_shot import pixel_box, single_image_fields, single_image_sample
from univg.data.schema import GroundingSample

SOURCE = "llmseg"


def _flatten(values: list[Any]) -> list[Any]:
    return [v for item in values for v in (item if isinstance(item, list) else [item])]


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    image, question, bbox = single_image_fields(record, ctx, "question", "bbox")
    flat = _flatten(bbox) if bbox is not None else []
    # Several boxes flatten to 8, 12... numbers: the official script scores the first, so do we.
    num_boxes = len(flat) // 4 if len(flat) > 4 and len(flat) % 4 == 0 else 1
    box = pixel_box(flat[:4] if num_boxes > 1 else flat, "bbox", image, ctx) if bbox is not None else None
    if not ctx.ok or box is None or image is None or question is None:
        return []
    return [single_image_sample(ctx, image, question, box, num_boxes)]


FORMAT = FormatSpec(
    name=SOURCE,
    description="LLMSeg grounding (UniVG-R1 zero-shot): image_path, question, bbox [[x1,y1,x2,y2]] pixels",
    read=read,
    needs_images=True,
)
