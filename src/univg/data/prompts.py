"""The one prompt builder: training, evaluation, inference and the server all call it.

Messages use the Hugging Face multimodal chat format (``{"type": "image"}`` placeholders followed by
the text), which both TRL's trainers and Qwen2-VL's chat template understand. Boxes go into the text
in the model's own coordinate system (`format_box`) and come back out through
`univg.core.parsing.read_box`.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from univg.core.boxes import CoordSystem, from_normalized
from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.data.images import ImageLoadError, target_resized_size
from univg.data.schema import GroundingSample, SampleError

# The paper's stage-2 instruction (UniVG-R1, section 3.2), appended to every reasoning prompt.
COT_SUFFIX = (
    " First output the thinking process in <think> </think> tags and then output the bounding box in"
    " <answer> </answer> tags."
)
# The official code's prefix for RefCOCO-style items, which get no reasoning suffix.
SIMPLE_REFERENCE_PREFIX = "This is a single image grounding task with simple reference. "
SIMPLE_REFERENCE_TASKS = frozenset({"refcoco", "refcoco+", "refcocog", "referring"})

Messages = list[dict[str, Any]]


class PromptStyle(str, Enum):
    """How the question is posed and the answer written."""

    UNIVG = "univg"  # UniVG-R1: CoT suffix, answer as <think>...</think><answer>BOX</answer>
    PLAIN = "plain"  # Qwen2-VL plain grounding: the question alone, answer as a bare box


def is_simple_reference(sample: GroundingSample) -> bool:
    """RefCOCO-style single-image items, which the official code prompts without reasoning."""
    return sample.task in SIMPLE_REFERENCE_TASKS and len(sample.images) == 1


def user_text(
    question: str, style: PromptStyle | str = PromptStyle.UNIVG, simple_reference: bool = False
) -> str:
    """The user's instruction text for a question, in the given style."""
    question = question.replace("<image>", "").strip()
    if PromptStyle(style) is PromptStyle.PLAIN:
        return question
    if simple_reference:
        return SIMPLE_REFERENCE_PREFIX + question
    return question + COT_SUFFIX


def build_messages(
    num_images: int,
    question: str,
    *,
    style: PromptStyle | str = PromptStyle.UNIVG,
    simple_reference: bool = False,
    answer: str | None = None,
) -> Messages:
    """User turn with the images in order, then the text; plus the assistant turn when `answer` is given."""
    if num_images < 0:
        raise ValueError(f"number of images must be >= 0, got {num_images}")
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": user_text(question, style, simple_reference)})
    messages: Messages = [{"role": "user", "content": content}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def format_box(
    box: Sequence[float], coords: CoordSystem | str = CoordSystem.QWEN2VL, size: tuple[int, int] | None = None
) -> str:
    """A canonical box written as the model writes it: ``(x1, y1), (x2, y2)``.

    `size` is the (width, height) of the resized target image, needed for pixel coordinates.
    """
    x1, y1, x2, y2 = from_normalized(box, coords, size)
    if CoordSystem.parse(coords) is CoordSystem.NORMALIZED:
        return f"({x1:.3f}, {y1:.3f}), ({x2:.3f}, {y2:.3f})"
    return f"({int(x1)}, {int(y1)}), ({int(x2)}, {int(y2)})"


def answer_text(
    box: Sequence[float],
    *,
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    size: tuple[int, int] | None = None,
    think: str | None = None,
    style: PromptStyle | str = PromptStyle.UNIVG,
    simple_reference: bool = False,
    box_tags: bool | None = None,
    ref: str | None = None,
) -> str:
    """The target response for a canonical box.

    UniVG style: ``<think>...</think><answer>BOX</answer>``; simple-reference items without a chain
    keep the answer tag only. Plain style: the box alone, or with `ref` Qwen2-VL's grounded form, the
    object named first: ``<|object_ref_start|>REF<|object_ref_end|>BOX``. `box_tags` wraps the box in
    Qwen2-VL's own ``<|box_start|>BOX<|box_end|>``, the form a Qwen2-VL's grounding is keyed to; by default
    plain answers have them (as Qwen2-VL answers) and UniVG answers do not (the paper's format).
    """
    plain = PromptStyle(style) is PromptStyle.PLAIN
    written = format_box(box, coords, size)
    if plain if box_tags is None else box_tags:
        written = f"<|box_start|>{written}<|box_end|>"
    if plain:
        return written if ref is None else f"<|object_ref_start|>{ref}<|object_ref_end|>{written}"
    if think is None and simple_reference:
        return f"<answer>{written}</answer>"
    return f"<think>{(think or '').strip()}</think><answer>{written}</answer>"


def sample_messages(
    sample: GroundingSample,
    *,
    style: PromptStyle | str = PromptStyle.UNIVG,
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    size: tuple[int, int] | None = None,
    with_answer: bool = False,
    box_tags: bool | None = None,
    name_target: bool = False,
    simple_reference_chains: bool = True,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Messages:
    """The chat for a sample; with `with_answer`, the assistant turn holds its chain and box (`box_tags`:
    see `answer_text`). `name_target` writes a plain answer in Qwen2-VL's grounded form, naming the target
    by the sample's ``extra["phrase"]`` (synthetic samples carry it) before its box. Without
    `simple_reference_chains`, a simple-reference item (whose prompt asks for no reasoning) answers
    ``<answer>BOX</answer>`` even when it has a chain.

    Pixel coordinates refer to the resized target image: `size` when given, else the size the
    processor (with `min_pixels`/`max_pixels`) makes of the target's original size
    (`target_resized_size`: recorded at conversion, else read from the image header).
    """
    simple = is_simple_reference(sample)
    answer = None
    if with_answer:
        if CoordSystem.parse(coords) is CoordSystem.PIXELS and size is None:
            try:
                size = target_resized_size(sample, min_pixels=min_pixels, max_pixels=max_pixels)
            except ImageLoadError as exc:
                raise ValueError(
                    f"sample {sample.id}: pixel coordinates need the target image size ({exc}); convert "
                    "with an image root (it records extra['target_size']) or pass size"
                ) from None
        ref = None
        if name_target:
            ref = sample.extra.get("phrase")
            if not isinstance(ref, str) or not ref:
                raise SampleError(
                    f"sample {sample.id}: extra.phrase is missing; answers that name the target need the "
                    "phrase a synthetic sample records",
                    record=sample.id,
                    field_name="extra.phrase",
                    option="answer_names_target",
                    hint="regenerate the data with univg data synth, or leave {option} off",
                )
        answer = answer_text(
            sample.box,
            coords=coords,
            size=size,
            think=sample.cot if simple_reference_chains or not simple else None,
            style=style,
            simple_reference=simple,
            box_tags=box_tags,
            ref=ref,
        )
    return build_messages(
        len(sample.images), sample.question, style=style, simple_reference=simple, answer=answer
    )
