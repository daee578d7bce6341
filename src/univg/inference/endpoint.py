"""Grounding through any OpenAI-compatible endpoint, with the Predictor's interface.

`EndpointPredictor.predict` takes the same `Request`s and returns the same `Prediction`s as the
local `Predictor`, so the evaluation harness, its scorer, resume and reports work unchanged for an
API model, a vLLM server or `univg serve`. Prompts come from the one prompt builder and images from
the one loader: each image is sent as the PNG of exactly the pixels a local model would see (resized
to the run's max_pixels), so a server that does not resize again (`univg serve`, vLLM with the same
budget) answers what the local model answers, and Qwen2.5-VL pixel boxes refer to the size the
scorer expects.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from univg.core.boxes import CoordSystem
from univg.core.errors import UnivgError
from univg.core.parsing import is_strict_format
from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.data.images import LoadedImage
from univg.data.prompts import Messages, PromptStyle
from univg.inference.predictor import (
    GenerationOptions,
    Prediction,
    Request,
    Timing,
    default_parse_mode,
    read_answer,
    request_chat,
)


class EndpointError(UnivgError, RuntimeError):
    """The endpoint cannot be used (unreachable, refused credentials, unknown model, failing): stop the run."""


class EndpointRequestError(ValueError):
    """The endpoint refused one request (e.g. too long for it): an error for that sample alone."""


def image_data_url(image: LoadedImage) -> str:
    """A loaded image as a PNG data URL: lossless, so the server decodes the very pixels sent."""
    buffer = io.BytesIO()
    image.image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def openai_messages(messages: Messages, image_urls: list[str]) -> list[dict[str, Any]]:
    """Chat-template messages with ``{"type": "image"}`` placeholders as OpenAI messages with image URLs."""
    urls = iter(image_urls)
    converted = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            converted.append({"role": message["role"], "content": content})
            continue
        parts = [
            {"type": "image_url", "image_url": {"url": next(urls)}}
            if part.get("type") == "image"
            else {"type": "text", "text": part.get("text", "")}
            for part in content
        ]
        converted.append({"role": message["role"], "content": parts})
    return converted


class EndpointPredictor:
    """Requests answered by a model behind an OpenAI-compatible endpoint, `concurrency` at a time."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        generation: GenerationOptions | None = None,
        style: PromptStyle | str = PromptStyle.UNIVG,
        coords: CoordSystem = CoordSystem.QWEN2VL,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        timeout_s: float = 300.0,
        max_retries: int = 4,
    ) -> None:
        from openai import OpenAI

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.base_url = base_url
        self.model = model
        # The client needs some key; servers without authentication ignore it.
        self.client = OpenAI(
            base_url=base_url, api_key=api_key or "no-key", timeout=timeout_s, max_retries=max_retries
        )
        self.batch_size = concurrency  # the harness hands over this many requests at a time
        self.length_sort_window = 1  # requests run one per connection: nothing is padded
        self.generation = generation or GenerationOptions()
        self.style = PromptStyle(style)
        self.parse_mode = default_parse_mode(self.style)
        self.coords = coords
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels

    def predict(
        self, requests: Iterable[Request], *, generation: GenerationOptions | None = None
    ) -> list[Prediction]:
        """Answer every request (concurrently), in order."""
        options = generation or self.generation
        requests = list(requests)
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.batch_size, len(requests))) as pool:
            return list(
                pool.map(lambda request: self._predict_one(request, options, len(requests)), requests)
            )

    def predict_one(self, request: Request, *, generation: GenerationOptions | None = None) -> Prediction:
        return self.predict([request], generation=generation)[0]

    def _predict_one(self, request: Request, options: GenerationOptions, batch_size: int) -> Prediction:
        started = time.perf_counter()
        chat = request_chat(
            request,
            str(request.id),
            style=self.style,
            parse_mode=self.parse_mode,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
        )
        images = chat.images
        payload = openai_messages(chat.messages, [image_data_url(image) for image in images])
        loaded = time.perf_counter()
        completion = self._complete(request, payload, options)
        choice = completion.choices[0] if completion.choices else None
        text = (choice.message.content if choice is not None else None) or ""
        counts = completion.usage
        answer = read_answer(text, images, self.coords, chat.parse_mode)
        return Prediction(
            id=request.id,
            text=text,
            **answer._asdict(),
            format_ok=is_strict_format(text),
            images=[image.path for image in images],
            image_sizes=[image.original_size for image in images],
            frame_indices=chat.frame_indices,
            prompt_tokens=int(counts.prompt_tokens) if counts is not None else 0,
            generated_tokens=int(counts.completion_tokens) if counts is not None else 0,
            timing=Timing(batch_size, loaded - started, time.perf_counter() - loaded),
        )

    def _complete(self, request: Request, messages: list[dict[str, Any]], options: GenerationOptions) -> Any:
        import openai

        settings: dict[str, Any] = {"max_tokens": options.max_new_tokens, "temperature": 0.0}
        if options.do_sample:
            settings.update(temperature=options.temperature, top_p=options.top_p)
            if options.seed is not None:
                settings["seed"] = options.seed
        try:
            return self.client.chat.completions.create(model=self.model, messages=messages, **settings)
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
            raise EndpointError(
                f"{self.base_url} refused model {self.model!r} (HTTP {exc.status_code}: {_message(exc)}); check "
                "--endpoint, --endpoint-model and --api-key-env"
            ) from None
        except openai.APIConnectionError as exc:
            raise EndpointError(f"cannot reach {self.base_url}: {exc}") from None
        except openai.APIStatusError as exc:
            if 400 <= exc.status_code < 500 and exc.status_code not in (408, 409, 429):
                raise EndpointRequestError(
                    f"request {request.id}: the endpoint answered HTTP {exc.status_code}: {_message(exc)}"
                ) from None
            raise EndpointError(
                f"{self.base_url} kept failing (HTTP {exc.status_code}: {_message(exc)}); run the same "
                "command again later to resume"
            ) from None


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))
