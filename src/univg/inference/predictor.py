"""Batched multi-image grounding: requests in, raw text plus a box in the target image out.

The CLI, the evaluator, the server and the demo all predict through `Predictor`, so they see the same
prompts (the one prompt builder), the same pixels (the one image loader) and the same box reading (the
one parser: `read_box`, and `answer_image` for the image the box is in). Requests run in batches with
left padding, so a batched greedy answer is the answer the request gets on its own. Within a window of
`length_sort_window` batches the requests are batched by prompt length (shortest first), so a batch
pads its prompts to a length close to each of theirs; answers still come back in request order.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from univg.core.boxes import CoordSystem, box_to_pixels
from univg.core.errors import UnivgError
from univg.core.parsing import (
    BoxTuple,
    ParseMode,
    answer_image,
    extract_box,
    extract_target_image,
    is_strict_format,
    read_box,
)
from univg.data.images import DEFAULT_NUM_FRAMES, ImageSource, LoadedImage, load_image, load_video_frames
from univg.data.prompts import Messages, PromptStyle, build_messages
from univg.models.budget import image_tokens, pixel_budget

if TYPE_CHECKING:
    from transformers import BatchFeature
    from transformers.generation.streamers import BaseStreamer

    from univg.models.loading import LoadedModel


logger = logging.getLogger(__name__)


class PromptTooLongError(UnivgError, ValueError):
    """A request whose prompt (mostly image tokens) does not fit the model's context.

    Raised before anything runs: truncating would cut through image tokens and silently feed the
    model a broken prompt.
    """


@dataclass
class Request:
    """One grounding question over images, or over frames sampled from a video.

    `images` are paths or PIL images, in the order the question counts them ("the second image").
    `video` is a video file or a folder of frames; `num_frames` are sampled uniformly and become the
    images. Give one or the other. `style` overrides the predictor's prompt style for this request.
    `messages` is a whole chat in the Hugging Face format (one ``{"type": "image"}`` per image, in the
    order of `images`) used as the prompt instead of one built from `question`: what an
    OpenAI-compatible server receives.
    """

    question: str
    images: Sequence[ImageSource] = ()
    video: str | os.PathLike[str] | None = None
    num_frames: int = DEFAULT_NUM_FRAMES
    id: str | None = None
    simple_reference: bool = False
    style: PromptStyle | str | None = None
    messages: Messages | None = None

    def problem(self) -> str | None:
        """Why this request cannot run, or None."""
        if self.messages is not None:
            if self.video is not None:
                return "a chat takes images, not a video"
            placeholders = sum(
                1
                for message in self.messages
                if isinstance(message.get("content"), list)
                for part in message["content"]
                if part.get("type") == "image"
            )
            if placeholders != len(self.images):
                return f"the chat has {placeholders} image placeholders for {len(self.images)} images"
            return None
        if not self.question.strip():
            return "empty question"
        if self.video is not None and len(self.images) > 0:
            return "give images or a video, not both"
        if self.video is None and not self.images:
            return "no images and no video"
        return None


@dataclass(frozen=True)
class GenerationOptions:
    """How answers are decoded: greedy by default (reproducible), sampled with `do_sample`."""

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


@dataclass
class Timing:
    """Wall-clock seconds of the batch a request ran in (every request of a batch waits for all of it)."""

    batch_size: int
    load_s: float  # reading and resizing images, building and tokenizing prompts
    generate_s: float

    @property
    def total_s(self) -> float:
        return self.load_s + self.generate_s


@dataclass
class Prediction:
    """What the model answered to one request, and the box read from it.

    `raw_box` is the box as written. `box` is canonical (0..1 of the target image) and `box_pixels`
    is in pixels of the original target image; both are None when no box was found or the target
    image is unknown (several images and none named, or an image named that is not there) and the
    family writes pixels. `box_pixels` needs a known target in any family.
    """

    id: str | None
    text: str
    raw_box: BoxTuple | None
    box: BoxTuple | None
    box_pixels: BoxTuple | None
    target_image: int | None  # the image the box is in (`answer_image`): the one named, or the only one
    named_image: int | None  # the image the model names, as it names it (may be out of range)
    format_ok: bool  # the whole response is <think>...</think><answer>ONE BOX</answer>
    images: list[str]
    image_sizes: list[tuple[int, int]]  # original (width, height) of each image
    frame_indices: list[int] | None  # for video requests: the frame each image was taken from
    prompt_tokens: int
    generated_tokens: int
    timing: Timing

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["timing"]["total_s"] = self.timing.total_s
        return record


class Grounder(Protocol):
    """What answers grounding requests in batches: `Predictor`, or `endpoint.EndpointPredictor`."""

    batch_size: int
    length_sort_window: int  # a `predict` call of this many batches is batched by prompt length

    def predict(
        self, requests: Iterable[Request], *, generation: GenerationOptions | None = None
    ) -> list[Prediction]: ...


class Answer(NamedTuple):
    """The box a response gives, read against the request's images (see `Prediction` for the fields)."""

    raw_box: BoxTuple | None
    box: BoxTuple | None
    box_pixels: BoxTuple | None
    target_image: int | None
    named_image: int | None


def read_answer(
    text: str,
    images: Sequence[LoadedImage],
    coords: CoordSystem,
    parse_mode: ParseMode = "answer",
) -> Answer:
    """Read the box of a response and place it in its target image.

    Qwen2-VL boxes (0..1000) are relative to whichever image they are in; Qwen2.5-VL pixel boxes need
    the resized size of the target image, so they are converted only when the target is known.
    """
    named = extract_target_image(text)
    target = answer_image(named, len(images))
    raw = extract_box(text, parse_mode)
    box = read_box(text, parse_mode, coords, images[target].resized_size if target is not None else None)
    pixels = (
        box_to_pixels(box, images[target].original_size) if box is not None and target is not None else None
    )
    return Answer(raw, box, pixels, target, named)


def load_request_images(
    request: Request, *, min_pixels: int, max_pixels: int
) -> tuple[list[LoadedImage], list[int] | None]:
    """A request's images as the model sees them, and for a video the frame each was taken from."""
    if request.video is not None:
        return load_video_frames(
            request.video, request.num_frames, min_pixels=min_pixels, max_pixels=max_pixels
        )
    return [
        load_image(source, min_pixels=min_pixels, max_pixels=max_pixels) for source in request.images
    ], None


def default_parse_mode(style: PromptStyle | str) -> ParseMode:
    """UniVG answers carry the box in <answer>; plain Qwen2-VL grounding writes a bare box."""
    return "answer" if PromptStyle(style) is PromptStyle.UNIVG else "first"


@dataclass
class RequestChat:
    """A request made ready for any backend: its images as the model sees them, its chat, and how its
    answer is read."""

    images: list[LoadedImage]
    frame_indices: list[int] | None  # for a video: the frame each image was taken from
    messages: Messages
    parse_mode: ParseMode


def request_chat(
    request: Request,
    name: str | int,
    *,
    style: PromptStyle,
    parse_mode: ParseMode,
    min_pixels: int,
    max_pixels: int,
) -> RequestChat:
    """Check a request, load its images and build its chat: its own messages, or the prompt builder's in
    its style (the backend's `style` unless the request names one, with that style's parse mode)."""
    problem = request.problem()
    if problem is not None:
        raise ValueError(f"request {name}: {problem}")
    images, frame_indices = load_request_images(request, min_pixels=min_pixels, max_pixels=max_pixels)
    chosen = style if request.style is None else PromptStyle(request.style)
    messages = request.messages
    if messages is None:
        messages = build_messages(
            len(images), request.question, style=chosen, simple_reference=request.simple_reference
        )
    return RequestChat(
        images, frame_indices, messages, parse_mode if request.style is None else default_parse_mode(chosen)
    )


@dataclass
class _Prepared:
    request: Request
    images: list[LoadedImage]
    frame_indices: list[int] | None
    prompt: str
    prompt_tokens: int
    index: int
    parse_mode: ParseMode


class Predictor:
    """Grounding with a loaded Qwen2-VL / Qwen2.5-VL model, many requests at a time."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        batch_size: int = 8,
        generation: GenerationOptions | None = None,
        style: PromptStyle | str = PromptStyle.UNIVG,
        parse_mode: ParseMode | None = None,
        length_sort_window: int = 8,
        fast_decode: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if length_sort_window < 1:
            raise ValueError(f"length_sort_window must be at least 1, got {length_sort_window}")
        self.model = loaded.model
        self.processor = loaded.processor
        self.coords = loaded.coords
        self.batch_size = batch_size
        self.length_sort_window = length_sort_window  # batches whose requests are sorted by length
        # univg's decoding loop for Qwen2-VL models (`models.fast_decode`): generate's tokens, less overhead
        self.fast_decode = fast_decode
        self.generation = generation or GenerationOptions()
        self.style = PromptStyle(style)
        self.parse_mode: ParseMode = parse_mode or default_parse_mode(self.style)
        self.min_pixels, self.max_pixels = pixel_budget(self.processor)
        self.context_length = int(self.model.config.get_text_config().max_position_embeddings)

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str, **kwargs: Any) -> Predictor:
        """Load a checkpoint and wrap it: the constructor's own options (`batch_size`, `generation`,
        `style`, `parse_mode`) go to it, every other keyword to `load_model_and_processor`."""
        from univg.models.loading import load_model_and_processor

        own = set(inspect.signature(cls.__init__).parameters) - {"self", "loaded"}
        options = {name: kwargs.pop(name) for name in list(kwargs) if name in own}
        return cls(load_model_and_processor(path_or_hub_id, **kwargs), **options)

    def predict(
        self,
        requests: Iterable[Request],
        *,
        generation: GenerationOptions | None = None,
        streamer: BaseStreamer | None = None,
    ) -> list[Prediction]:
        """Answer every request, `batch_size` at a time; the answers come back in request order.

        Each window of `length_sort_window` batches is prepared first (images loaded, prompts built) and
        batched by prompt length, so little of a batch is padding. A batch that runs out of accelerator
        memory is split in half and `batch_size` lowered to what fits, so a large batch size costs
        nothing where it does not fit (greedy answers are the same; seeded sampling draws differently
        after a split). A `streamer` receives the prompts and then each decoding step's tokens of the
        whole batch (one row per request, in order), as `generate` hands them over; the requests must fit
        one batch.
        """
        options = generation or self.generation
        requests = list(requests)
        if streamer is not None and len(requests) > self.batch_size:
            raise ValueError(
                f"a streamer needs one batch: {len(requests)} requests, batch size {self.batch_size}"
            )
        predictions: list[Prediction] = []
        window = self.batch_size * self.length_sort_window
        for start in range(0, len(requests), window):
            prepared, load_s = [], []
            for index, request in enumerate(requests[start : start + window], start):
                begun = time.perf_counter()
                prepared.append(self._prepare(request, index, options.max_new_tokens))
                load_s.append(time.perf_counter() - begun)
            order = sorted(range(len(prepared)), key=lambda i: prepared[i].prompt_tokens)
            answers: dict[int, Prediction] = {}
            for first in range(0, len(order), self.batch_size):
                members = sorted(order[first : first + self.batch_size])  # request order within a batch
                batch = [prepared[i] for i in members]
                results = self._run_fitting(batch, sum(load_s[i] for i in members), options, streamer)
                answers.update(zip(members, results, strict=True))
            predictions.extend(answers[i] for i in range(len(prepared)))
        return predictions

    def predict_one(self, request: Request, *, generation: GenerationOptions | None = None) -> Prediction:
        return self.predict([request], generation=generation)[0]

    def encode(self, requests: Sequence[Request], *, max_new_tokens: int | None = None) -> BatchFeature:
        """The model inputs `predict` builds for one batch of requests (left padded, on the model's device).

        For callers that need more than generated text from the same prompts, e.g. answer scores.
        """
        budget = self.generation.max_new_tokens if max_new_tokens is None else max_new_tokens
        return self._encode([self._prepare(request, i, budget) for i, request in enumerate(requests)])

    def _prepare(self, request: Request, index: int, max_new_tokens: int) -> _Prepared:
        """Load a request's images and build its prompt; refuse it when it cannot fit the context."""
        name = request.id or index
        chat = request_chat(
            request,
            name,
            style=self.style,
            parse_mode=self.parse_mode,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
        )
        images = chat.images
        prompt = self.processor.apply_chat_template(chat.messages, add_generation_prompt=True, tokenize=False)
        # The prompt as the model will see it: each image placeholder expands to its image tokens.
        text_tokens = len(self.processor.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        image_count = sum(image_tokens(self.processor, img.resized_size) for img in images)
        prompt_tokens = text_tokens - len(images) + image_count
        if prompt_tokens + max_new_tokens > self.context_length:
            raise PromptTooLongError(
                f"request {name}: the prompt needs {prompt_tokens} tokens ({image_count} of them for "
                f"{len(images)} images at max_pixels={self.max_pixels}) and the answer up to "
                f"{max_new_tokens}, but the model's context is {self.context_length} tokens; use fewer or "
                "smaller images (a lower max_pixels) or a lower max_new_tokens"
            )
        return _Prepared(request, images, chat.frame_indices, prompt, prompt_tokens, index, chat.parse_mode)

    def _encode(self, batch: list[_Prepared]) -> BatchFeature:
        images = [img.image for p in batch for img in p.images]
        inputs = self.processor(
            text=[p.prompt for p in batch],
            images=images or None,  # a text-only chat (a request built from messages) has none
            padding=True,
            padding_side="left",
            max_length=None,  # a trained checkpoint's tokenizer saves the trainer's max_length; prompts are checked above
            return_tensors="pt",
        )
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        for prepared, length in zip(batch, lengths, strict=True):
            if length != prepared.prompt_tokens:
                raise RuntimeError(
                    f"request {prepared.request.id or prepared.index}: the processor made {length} prompt "
                    f"tokens, expected {prepared.prompt_tokens} (image resizing disagrees with the processor)"
                )
        inputs = inputs.to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def _run_fitting(
        self,
        batch: list[_Prepared],
        prepare_s: float,
        options: GenerationOptions,
        streamer: BaseStreamer | None,
    ) -> list[Prediction]:
        """`_run_batch`, halving the batch (and `batch_size` from then on) while it runs out of memory."""
        import torch

        try:
            return self._run_batch(batch, prepare_s, options, streamer)
        except torch.OutOfMemoryError:
            if len(batch) == 1 or streamer is not None:
                raise
        half = (len(batch) + 1) // 2
        logger.warning("a batch of %d ran out of memory: batch size %d from now on", len(batch), half)
        self.batch_size = min(self.batch_size, half)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        first = self._run_fitting(batch[:half], prepare_s / 2, options, None)
        return first + self._run_fitting(batch[half:], prepare_s / 2, options, None)

    def _run_batch(
        self,
        batch: list[_Prepared],
        prepare_s: float,
        options: GenerationOptions,
        streamer: BaseStreamer | None = None,
    ) -> list[Prediction]:
        import torch
        from transformers import GenerationConfig

        from univg.models.fast_decode import fast_sample, fast_sample_applies

        start = time.perf_counter()
        inputs = self._encode(batch)
        loaded_at = time.perf_counter()

        defaults = self.model.generation_config
        config = GenerationConfig(
            max_new_tokens=options.max_new_tokens,
            do_sample=options.do_sample,
            temperature=options.temperature if options.do_sample else None,
            top_p=options.top_p if options.do_sample else None,
            top_k=options.top_k if options.do_sample else None,
            eos_token_id=defaults.eos_token_id,
            pad_token_id=defaults.pad_token_id
            if defaults.pad_token_id is not None
            else defaults.eos_token_id,
            bos_token_id=defaults.bos_token_id,
        )
        if options.seed is not None:
            torch.manual_seed(options.seed)
        with torch.inference_mode():
            settings = {"generation_config": config, "streamer": streamer}
            if self.fast_decode and fast_sample_applies(self.model, settings):
                settings["custom_generate"] = fast_sample
            output = self.model.generate(**inputs, **settings)
        generated = output[:, inputs["input_ids"].shape[1] :].tolist()
        timing = Timing(len(batch), prepare_s + loaded_at - start, time.perf_counter() - loaded_at)
        return [
            self._prediction(p, ids, timing, config.eos_token_id)
            for p, ids in zip(batch, generated, strict=True)
        ]

    def _prediction(self, prepared: _Prepared, ids: list[int], timing: Timing, eos: Any) -> Prediction:
        stops = set(eos if isinstance(eos, list) else [eos])
        end = next((i for i, token in enumerate(ids) if token in stops), len(ids))
        text = self.processor.tokenizer.decode(ids[:end], skip_special_tokens=False)
        answer = read_answer(text, prepared.images, self.coords, prepared.parse_mode)
        return Prediction(
            id=prepared.request.id,
            text=text,
            **answer._asdict(),
            format_ok=is_strict_format(text),
            images=[img.path for img in prepared.images],
            image_sizes=[img.original_size for img in prepared.images],
            frame_indices=prepared.frame_indices,
            prompt_tokens=prepared.prompt_tokens,
            generated_tokens=end,
            timing=timing,
        )
