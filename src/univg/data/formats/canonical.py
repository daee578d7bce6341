"""Our own canonical JSON Lines (`univg.data.schema`): validating converted or synthesized data.

Records keep their own id, task and source; the checks are the same as for every other format
(fields, box in 0..1, target index within the images, images present and readable with a root).
"""

from __future__ import annotations

from typing import Any

from univg.core.boxes import CoordSystem
from univg.data.formats.base import BAD_FIELD, FormatSpec, RecordContext
from univg.data.schema import GroundingSample

SOURCE = "canonical"


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    for name in ("id", "task", "source"):
        ctx.field(record, name, (str, int))
    question = ctx.field(record, "question", str)
    images = ctx.image_list(record, "images")
    box = ctx.field(record, "box", list)
    if box is not None:
        ctx.box(box, "box", CoordSystem.NORMALIZED)
    target = ctx.field(record, "target_image", int)
    if target is not None and images is not None:
        ctx.target(target, len(images), "target_image")
    ctx.field(record, "cot", str, required=False, allow_empty=True)
    ctx.field(record, "extra", dict, required=False, allow_empty=True)
    frames = ctx.field(record, "frame_indices", list, required=False)
    if frames is not None and not all(isinstance(i, int) and not isinstance(i, bool) for i in frames):
        ctx.add(BAD_FIELD, "frame_indices", f"expected frame indices, got {frames!r:.80}")
    if not ctx.ok or question is None:
        return []
    return [GroundingSample.from_json(record)]


FORMAT = FormatSpec(
    name=SOURCE,
    description="univg canonical JSON Lines (the output of convert and of the synthetic world)",
    read=read,
    own_ids=True,
)
