"""Question wording, copied from MIG-Bench (`MIG_data.json`) task by task.

The synthetic world asks its questions in the benchmark's own words, grammar included ("the 3th
image"), so a model trained here meets the real prompts unchanged. Only `referring`, `locate`, `marked` and the
reasoning puzzles have wording of our own, in the style of RefCOCO and of MIG-Bench's reasoning items.
"""

from __future__ import annotations

import random

from univg.data.synthetic.problem import MARKED_BOX

COMMON_OBJECT = (
    "These images share one object in common. Recognize and locate this object in the {k}th image."
)
CORRESPONDENCE = (
    "You are now presented with two objects. For the area marked by the red bounding box in the first image,"
    " identify and locate the corresponding area in the second image that serves a similar function or"
    " shares a similar meaning."
)
DIFF = "Compare these two images carefully and give me the coordinates of their difference."
MULTI_VIEW = (
    "These images share one object in common(the object marked with red bounding box in the first image("
    + MARKED_BOX
    + "). Recognize and locate this object in the {k}th image."
)
OBJECT_TRACKING = (
    "These are a sequence of images containing moving objects. For the object in the first image marked with"
    " red bounding box(" + MARKED_BOX + "), please locate it in the {k}th image."
)
REFER_GROUNDING = "Find and locate where does the object in image-1 locate in the image-2."
REGION = (
    "You are given a source image followed by its several regions. Please locate the {k}th region picture in"
    " the source image."
)
# The double space is MIG-Bench's own.
VIEW_DIFF = (
    "Compare these two images carefully and give me the coordinates of their real difference in the second"
    " image.  Find it and locate it in the second image."
)
# MIG-Bench's reasoning items all end with this sentence.
REASONING_SUFFIX = " Find it and locate it in the second image."
LOCATE = "Locate the {expr} in the {k}th image."
MARKED = "Name and locate the object marked with red bounding box(" + MARKED_BOX + ")."

# group_grounding's eleven phrasings; `referring` uses the same sentences without Qwen's ref tags.
EXPRESSION_TEMPLATES = (
    "Please find the bounding box coordinates for the area described by: {ref}.",
    "Identify the bounding box of the region described by the following expression: {ref}.",
    "Please locate the bounding box of the region described in this sentence: {ref}.",
    "Please determine the bounding box coordinates for the area described here: {ref}.",
    "Please specify the bounding box coordinates for the region indicated by this sentence: {ref}.",
    "Please provide the bounding box coordinate of the region this sentence describes: {ref}.",
    "Provide the bounding box of the region this expression refers to: {ref}.",
    "Give the bounding box of the region that this sentence refers to: {ref}.",
    "Provide the bounding box coordinates for the region referred to by this sentence: {ref}.",
    "Give the bounding box coordinates of the area mentioned in this sentence: {ref}.",
    "Please identify the bounding box coordinates for the area described by this sentence: {ref}.",
)


def expression_question(expression: str, rng: random.Random, tagged: bool) -> str:
    """A referring question; `tagged` wraps the expression in Qwen's object-ref tags, as MIG-Bench does."""
    ref = f"<|object_ref_start|>{expression}<|object_ref_end|>" if tagged else expression
    return rng.choice(EXPRESSION_TEMPLATES).format(ref=ref)
