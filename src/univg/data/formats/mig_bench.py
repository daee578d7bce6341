"""MIG-Bench (Migician's multi-image grounding benchmark): ``MIG_data.json``, one JSON array.

Each record: task, images, question, answer (canonical 0..1 box in the target image),
additional_info, need_format. The target image is not a field: it is named in the question ("1th
image", "image-2", "the second image"; the last image named is the one to ground in, since earlier
ones are the reference), for group_grounding in additional_info ("It is in the first image."), and
is the source image (the first) for region. The two images of a diff pair have the same geometry, so
the box is right in either; the second (the changed image) is taken and both are listed as accepted.
Sample ids are the record's 0-based position in the file.
"""

from __future__ import annotations

from typing import Any

from univg.core.boxes import CoordSystem
from univg.data.formats.base import FormatSpec, RecordContext, last_reference
from univg.data.schema import GroundingSample

SOURCE = "mig-bench"
# Where each task names its target image: the texts searched in order (the last image named wins).
_TARGET_TEXTS = {"group_grounding": ("additional_info", "question")}
_FIXED_TARGETS = {"region": 0}
_SAME_GEOMETRY_TASKS = frozenset({"diff"})


def resolve_target(task: str, question: str, additional_info: str, num_images: int) -> int | None:
    """The 0-based target image of a MIG-Bench record, or None when nothing names one."""
    if task in _FIXED_TARGETS:
        return _FIXED_TARGETS[task]
    if task in _SAME_GEOMETRY_TASKS:
        return num_images - 1
    texts = {"question": question, "additional_info": additional_info}
    order = _TARGET_TEXTS.get(task, ("question", "additional_info"))
    return last_reference(*(texts[name] for name in order))


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    task = ctx.field(record, "task", str)
    images = ctx.image_list(record, "images")
    question = ctx.field(record, "question", str)
    additional_info = ctx.field(record, "additional_info", str, required=False, allow_empty=True) or ""
    answer = ctx.field(record, "answer", list)
    box = ctx.box(answer, "answer", CoordSystem.NORMALIZED) if answer is not None else None
    target = None
    if task is not None and images is not None and question is not None:
        field_name = "additional_info" if task in _TARGET_TEXTS else "question"
        target = ctx.target(
            resolve_target(task, question, additional_info, len(images)),
            len(images),
            field_name,
            additional_info if task in _TARGET_TEXTS else question,
        )
        tags = question.count("<image>")
        if tags:
            ctx.image_tags(tags, len(images), "question")
    if not ctx.ok or box is None or target is None:
        return []
    extra: dict[str, Any] = {"need_format": record["need_format"]} if "need_format" in record else {}
    if additional_info:
        extra["additional_info"] = additional_info
    if task in _SAME_GEOMETRY_TASKS:
        extra["target_images"] = list(range(len(images)))
    return [ctx.sample(task, images, question.strip(), target, box, extra=extra)]


FORMAT = FormatSpec(
    name=SOURCE,
    description="MIG-Bench MIG_data.json (Migician): multi-image grounding benchmark, boxes 0..1",
    read=read,
)
