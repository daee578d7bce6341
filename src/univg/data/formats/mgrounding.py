"""MGrounding-630k (Migician's training set): ShareGPT conversations, one big JSON array.

Answers name the target image and give a Qwen2-VL box (0..1000):
"It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>". Conversations may have
several turns; each becomes a sample with id ``"{record}-{turn}"``. When the answer names no image,
the question may ("locate it in the 2th image"); a single image is its own target. Answers with
several boxes (multi-object free-form grounding) are reported, not guessed at.
"""

from __future__ import annotations

from typing import Any

from univg.data.formats.base import FormatSpec, RecordContext, clean_question, last_reference
from univg.data.formats.conversation import dialogue, turn_sample
from univg.data.schema import GroundingSample

SOURCE = "mgrounding"


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    parsed = dialogue(record, ctx)
    if parsed is None:
        return []
    images, turns = parsed
    task = record.get("type") if isinstance(record.get("type"), str) else SOURCE
    extra = {"source_id": record["id"]} if "id" in record else {}
    samples = []
    for number, turn in enumerate(turns):
        question = clean_question(turn.question)
        # the image the answer names, else the last one the question names, else the only image
        named = last_reference(turn.answer, question)
        sample = turn_sample(ctx, turn, number, task, images, question, turn.answer, named, extra=extra)
        samples += [sample] if sample is not None else []
    return samples if ctx.ok else []


FORMAT = FormatSpec(
    name=SOURCE,
    description="MGrounding-630k (Migician): ShareGPT conversations with <image> tags, boxes 0..1000",
    read=read,
)
