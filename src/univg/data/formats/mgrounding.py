"""MGrounding-630k (Migician's training set): ShareGPT conversations, one big JSON array.

Answers name the target image and give a Qwen2-VL box (0..1000):
"It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>". Conversations may have
several turns; each becomes a sample with id ``"{record}-{turn}"``. When the answer names no image,
the question may ("locate it in the 2th image"); a single image is its own target. Answers with
several boxes (multi-object free-form grounding) are reported, not guessed at.
"""

from __future__ import annotations

from typing import Any

from univg.core.boxes import CoordSystem
from univg.data.formats.base import FormatSpec, RecordContext, clean_question, last_reference
from univg.data.formats.conversation import read_turns
from univg.data.schema import GroundingSample

SOURCE = "mgrounding"


def resolve_target(answer: str, question: str, num_images: int) -> int | None:
    """The image the answer names, else the last one the question names, else the only image."""
    named = last_reference(answer, question)
    if named is None and num_images == 1:
        return 0
    return named


def read(raw: Any, ctx: RecordContext) -> list[GroundingSample]:
    record = ctx.record(raw)
    if record is None:
        return []
    images = ctx.image_list(record, "images")
    parsed = read_turns(record, ctx)
    task = record.get("type") if isinstance(record.get("type"), str) else SOURCE
    if images is None or parsed is None:
        return []
    turns, tags, name = parsed
    ctx.image_tags(tags, len(images), name)
    samples = []
    for number, turn in enumerate(turns):
        question = clean_question(turn.question)
        written = ctx.single_box(turn.answer, turn.answer_field)
        box = ctx.box(written, turn.answer_field, CoordSystem.QWEN2VL) if written is not None else None
        target = ctx.target(
            resolve_target(turn.answer, question, len(images)), len(images), turn.answer_field, turn.answer
        )
        if box is None or target is None:
            continue
        extra: dict[str, Any] = {"turn": number}
        if "id" in record:
            extra["source_id"] = record["id"]
        samples.append(
            GroundingSample(
                id=f"{ctx.index}-{number}",
                task=task,
                source=SOURCE,
                images=list(images),
                question=question,
                target_image=target,
                box=box,
                extra=extra,
            )
        )
    return samples if ctx.ok else []


FORMAT = FormatSpec(
    name=SOURCE,
    description="MGrounding-630k (Migician): ShareGPT conversations with <image> tags, boxes 0..1000",
    read=read,
)
