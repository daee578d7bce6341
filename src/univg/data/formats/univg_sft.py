"""UniVG-R1 stage-1 CoT-SFT data (``stage1_cotsft.json``, a LLaMA-Factory ShareGPT file).

Answers are ``<think>reasoning</think><answer>...box...</answer>`` with Qwen2-VL 0..1000 boxes (the
authors confirm the 0..1000 normalisation). The reasoning becomes the sample's chain of thought. The
target image is the one the answer names, else the last one the question names, else the last one
the reasoning settles on, else the only image. RefCOCO items (COCO train2014 paths) are tagged so
they get the simple-reference prompt.
"""

from __future__ import annotations

import re
from typing import Any

from univg.core.parsing import extract_answer_text
from univg.data.formats.base import MALFORMED_BOX, FormatSpec, RecordContext, clean_question, last_reference
from univg.data.formats.conversation import dialogue, turn_sample
from univg.data.formats.refcoco import looks_like_refcoco
from univg.data.schema import GroundingSample

SOURCE = "univg-sft"
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    parsed = dialogue(record, ctx)
    if parsed is None:
        return []
    images, turns = parsed
    refcoco = looks_like_refcoco(images)
    task = "refcoco" if refcoco else str(record.get("task") or record.get("type") or "cot-sft")
    samples = []
    for number, turn in enumerate(turns):
        question = clean_question(turn.question)
        answer = extract_answer_text(turn.answer)
        think = _THINK_RE.search(turn.answer)
        if answer is None:
            ctx.add(MALFORMED_BOX, turn.answer_field, f"no <answer>...</answer> in {turn.answer[:120]!r}")
            continue
        named = last_reference(answer, question, think.group(1) if think else None)
        cot = think.group(1).strip() if think else None
        sample = turn_sample(ctx, turn, number, task, images, question, answer, named, cot=cot)
        samples += [sample] if sample is not None else []
    return samples if ctx.ok else []


FORMAT = FormatSpec(
    name=SOURCE,
    description="UniVG-R1 stage-1 CoT-SFT json (ShareGPT): <think>...</think><answer>box 0..1000</answer>",
    read=read,
)
