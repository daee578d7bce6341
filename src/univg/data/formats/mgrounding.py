"""MGrounding-630k (Migician's training set): ShareGPT conversations, one big JSON array.

Answers name the target image and give a Qwen2-VL box (0..1000):
"It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>". Conversations may have
several turns; each becomes a sample with id ``"{record}-{turn}"``. When the answer names no image,
the question may ("locate it in the 2th image"); a single image is its own target. Answers with
several boxes (multi-object free-form grounding) are reported, not guessed at.
"""

from __future__ import annotations

from typing import Any

from univg.data.formats.base import FormatSpec, RecordContext, clean_question, last_reference, named_or_only
from univg.data.formats.conversation import dialogue
from univg.data.schema import GroundingSample

SOURCE = "mgrounding"


def resolve_target(answer: str, question: str, num_images: int) -> int | None:
    """The image the answer names, else the last one the question names, else the only image."""
    return named_or_only(last_reference(answer, question), num_images)


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
        box = ctx.answer_box(turn.answer, turn.answer_field)
        target = ctx.target(
            resolve_target(turn.answer, question, len(images)), len(images), turn.answer_field, turn.answer
        )
        if box is None or target is None:
            continue
        samples.append(ctx.sample(task, images, question, target, box, turn=number, extra=extra))
    return samples if ctx.ok else []


FORMAT = FormatSpec(
    name=SOURCE,
    description="MGrounding-630k (Migician): ShareGPT conversations with <image> tags, boxes 0..1000",
    read=read,
)
