"""UniVG-R1 stage-2 RL data (``stage2_rl.json``): MGrounding and RefCOCO items for GRPO.

Each record: images, question (the official loader strips ``<image>`` tags from it), answer
[x1, y1, x2, y2] in Qwen2-VL's 0..1000. The file has no target-image field: it is read from the
question ("locate it in the 2th image"), or is the only image. Items whose question names no image
cannot say which image the box is in and are reported. RefCOCO items are recognised as the official
code does, by their COCO train2014 image path, and get the simple-reference prompt.
"""

from __future__ import annotations

from typing import Any

from univg.core.boxes import CoordSystem
from univg.data.formats.base import (
    IMAGE_TAG,
    FormatSpec,
    RecordContext,
    clean_question,
    last_reference,
    named_or_only,
)
from univg.data.formats.refcoco import looks_like_refcoco
from univg.data.schema import GroundingSample

SOURCE = "univg-rl"


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    images = ctx.image_list(record, "images")
    question = ctx.field(record, "question", str)
    answer = ctx.field(record, "answer", (list, str))
    box = ctx.box(answer, "answer", CoordSystem.QWEN2VL) if answer is not None else None
    target = None
    if images is not None and question is not None:
        tags = question.count(IMAGE_TAG)
        if tags:
            ctx.image_tags(tags, len(images), "question")
        named = last_reference(question)
        target = ctx.target(named_or_only(named, len(images)), len(images), "question", question)
    if not ctx.ok or box is None or target is None:
        return []
    task = (
        "refcoco"
        if looks_like_refcoco(images)
        else str(record.get("task") or record.get("type") or "mgrounding")
    )
    return [ctx.sample(task, images, clean_question(question), target, box)]


FORMAT = FormatSpec(
    name=SOURCE,
    description="UniVG-R1 stage-2 RL json: images, question, answer [x1,y1,x2,y2] in 0..1000",
    read=read,
)
