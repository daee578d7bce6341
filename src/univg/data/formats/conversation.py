"""ShareGPT / chat-message conversations (MGrounding-630k, the UniVG-R1 stage-1 CoT data).

Both LLaMA-Factory layouts are read: ``conversations`` with ``from``/``value`` (human/gpt) and
``messages`` with ``role``/``content`` (user/assistant, content a string or a list of parts). Each
question-answer pair becomes one sample; every ``<image>`` tag (or image part) is counted, since the
trainer pairs tags with images by position and a mismatch silently shifts every image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from univg.data.formats.base import BAD_FIELD, IMAGE_TAG, RecordContext, named_or_only
from univg.data.schema import GroundingSample

_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
}  # fmt: skip
FIELD_NAMES = ("conversations", "messages")


@dataclass(frozen=True)
class Turn:
    """One question and its answer, with the fields they came from (for problem reports)."""

    question: str
    answer: str
    question_field: str
    answer_field: str


def _text_and_tags(content: Any) -> tuple[str, int] | None:
    """The text of a turn's content and the images it holds (tags in text, or image parts)."""
    if isinstance(content, str):
        return content, content.count(IMAGE_TAG)
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        texts = [str(part.get("text", "")) for part in content if part.get("type") == "text"]
        images = sum(1 for part in content if part.get("type") in ("image", "image_url"))
        text = "".join(texts)
        return text, images + text.count(IMAGE_TAG)
    return None


def dialogue(record: dict[str, Any], ctx: RecordContext) -> tuple[list[str], list[Turn]] | None:
    """The images and question-answer turns of a dialogue record, its ``<image>`` tags counted against
    its images; None when either is unusable (the problems are noted)."""
    images = ctx.image_list(record, "images")
    parsed = read_turns(record, ctx)
    if images is None or parsed is None:
        return None
    turns, tags, name = parsed
    ctx.image_tags(tags, len(images), name)
    return images, turns


def turn_sample(
    ctx: RecordContext,
    turn: Turn,
    number: int,
    task: str,
    images: list[str],
    question: str,
    answer: str,
    named: int | None,
    **fields: Any,
) -> GroundingSample | None:
    """Turn `number` as a sample: the one 0..1000 box of `answer` in the image `named` (or the only
    one); None, with the problems noted, when either cannot be read."""
    box = ctx.answer_box(answer, turn.answer_field)
    target = ctx.target(named_or_only(named, len(images)), len(images), turn.answer_field, answer)
    if box is None or target is None:
        return None
    return ctx.sample(task, images, question, target, box, turn=number, **fields)


def read_turns(record: dict[str, Any], ctx: RecordContext) -> tuple[list[Turn], int, str] | None:
    """The question-answer pairs of a conversation, its image count, and its field name."""
    turns = ctx.first_of(record, FIELD_NAMES, list)
    if turns is None:
        return None
    name = next(n for n in FIELD_NAMES if n in record)
    pairs: list[Turn] = []
    pending: tuple[str, str] | None = None
    tags = 0
    for position, turn in enumerate(turns):
        where = f"{name}[{position}]"
        if not isinstance(turn, dict):
            ctx.add(BAD_FIELD, where, f"expected an object, got {type(turn).__name__}")
            continue
        role = _ROLES.get(str(turn.get("from", turn.get("role", ""))).lower())
        parsed = _text_and_tags(turn.get("value", turn.get("content")))
        if role is None or parsed is None:
            ctx.add(BAD_FIELD, where, "expected from/value (or role/content) with text")
            continue
        text, count = parsed
        if role == "system":
            continue
        if role == "user":
            tags += count
            if pending is not None:
                ctx.add(BAD_FIELD, pending[1], "question without an answer")
            pending = (text, where)
        elif pending is None:
            ctx.add(BAD_FIELD, where, "answer without a question")
        else:
            pairs.append(Turn(pending[0], text, pending[1], where))
            pending = None
    if pending is not None:
        ctx.add(BAD_FIELD, pending[1], "question without an answer")
    if not pairs and ctx.ok:
        ctx.add(BAD_FIELD, name, "no question-answer pair")
    return pairs, tags, name
