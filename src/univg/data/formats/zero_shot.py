"""What the four zero-shot benchmarks share: the official prompt wording and pixel boxes.

LISA, LLMSeg, ReVOS and ReasonVOS give boxes in pixels of the original image, so their records are
normalised with the target image's size; the questions are wrapped in the instruction the official
UniVG-R1 evaluation scripts use (the reasoning suffix is added later by the prompt builder).
"""

from __future__ import annotations

from typing import Any

from univg.core.boxes import CoordSystem
from univg.data.formats.base import MALFORMED_BOX, RecordContext
from univg.data.images import VIDEO_TARGET_FRAME
from univg.data.schema import GroundingSample

SINGLE_IMAGE_TEMPLATE = (
    "Output the bounding box in the image corresponding to the instruction: {instruction}."
)
VIDEO_TEMPLATE = (
    "This is a sequence of images from a video. Please understand the entire video content, and then output "
    "the bounding box in the {ordinal} image according to the instruction: {instruction}."
)
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def video_question(instruction: str, target: int = VIDEO_TARGET_FRAME) -> str:
    return VIDEO_TEMPLATE.format(ordinal=_ORDINALS[target], instruction=instruction.strip())


def pixel_box(
    values: Any, field_name: str, image: str | None, ctx: RecordContext
) -> tuple[float, float, float, float] | None:
    """A pixel box normalised by its image's size (None without images: only pixel checks run)."""
    size = ctx.image_size(image) if image is not None else None
    return ctx.box(values, field_name, CoordSystem.PIXELS, size)


def single_image_fields(
    record: dict[str, Any], ctx: RecordContext, question_field: str, boxes_field: str
) -> tuple[str | None, str | None, list[Any] | None]:
    """(image_path, instruction, boxes) of a single-image record (LISA, LLMSeg), the image checked."""
    image = ctx.field(record, "image_path", str)
    instruction = ctx.field(record, question_field, str)
    boxes = ctx.field(record, boxes_field, list)
    if image is not None:
        ctx.check_image(image, "image_path")
    return image, instruction, boxes


def single_image_sample(
    ctx: RecordContext,
    image: str,
    instruction: str,
    box: tuple[float, float, float, float],
    num_boxes: int,
) -> GroundingSample:
    """A zero-shot single-image record (LISA, LLMSeg) in our schema, worded as the official scripts ask."""
    question = SINGLE_IMAGE_TEMPLATE.format(instruction=instruction.strip())
    return ctx.sample(
        ctx.format_name, [image], question, 0, box, extra={"instruction": instruction, "num_boxes": num_boxes}
    )


def target_frame_box(
    boxes: list[Any], target: int, image: str | None, ctx: RecordContext
) -> tuple[float, float, float, float] | None:
    """The ground truth of the scored frame (video benchmarks give one pixel box per sampled frame)."""
    if len(boxes) <= target:
        ctx.add(MALFORMED_BOX, "bbox_list", f"{len(boxes)} box(es): no box for frame {target + 1}")
        return None
    return pixel_box(boxes[target], f"bbox_list[{target}]", image, ctx)
