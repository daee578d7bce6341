"""What the four zero-shot benchmarks share: the official prompt wording and pixel boxes.

LISA, LLMSeg, ReVOS and ReasonVOS give boxes in pixels of the original image, so their records are
normalised with the target image's size; the questions are wrapped in the instruction the official
UniVG-R1 evaluation scripts use (the reasoning suffix is added later by the prompt builder).
"""

from __future__ import annotations

from typing import Any

from univg.core.boxes import CoordSystem
from univg.data.formats.base import RecordContext
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


def single_image_sample(
    index: int,
    source: str,
    image: str,
    instruction: str,
    box: tuple[float, float, float, float],
    num_boxes: int,
) -> GroundingSample:
    """A zero-shot single-image record (LISA, LLMSeg) in our schema, worded as the official scripts ask."""
    return GroundingSample(
        id=str(index),
        task=source,
        source=source,
        images=[image],
        question=SINGLE_IMAGE_TEMPLATE.format(instruction=instruction.strip()),
        target_image=0,
        box=box,
        extra={"instruction": instruction, "num_boxes": num_boxes},
    )
