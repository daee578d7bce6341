"""The HTTP routes: chat completions, grounding, models, health, metrics and the page.

Every request is checked (limits, text, images) before it is queued, so the generation thread only
ever sees requests that can run; what goes wrong later is still a 4xx for that request alone.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi import Request as HttpRequest
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from univg.core.boxes import box_to_pixels
from univg.core.parsing import extract_target_image
from univg.data.images import LoadedImage
from univg.inference.predictor import GenerationOptions, Prediction, Predictor, Request
from univg.serving.config import ServeConfig
from univg.serving.metrics import ServerMetrics
from univg.serving.protocol import (
    ChatCompletionRequest,
    GroundFields,
    GroundRequest,
    chat_chunk,
    chat_completion,
    finish_reason,
    generation_options,
    model_list,
    to_hf_messages,
    usage,
    validation_message,
)
from univg.serving.safety import (
    ApiError,
    ImagePolicy,
    bad_request,
    check_text,
    decode_image,
    image_from_reference,
)
from univg.serving.scheduler import BatchScheduler, Job, QueueFullError, ShuttingDownError

router = APIRouter()
DECODE_SLOTS = 4  # requests decoding images at the same time
ImageSources = list[tuple[str, str | bytes]]  # (field, a reference to decode, or uploaded bytes)


class SafeJSONResponse(Response):
    """JSON with every non-ASCII character escaped: a reply can never fail to encode."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


@dataclass
class ServerState:
    """What the routes share, kept on ``app.state.univg``."""

    config: ServeConfig
    predictor: Predictor
    scheduler: BatchScheduler
    metrics: ServerMetrics
    forbidden_tokens: frozenset[str]
    image_policy: ImagePolicy
    page: bytes = b""
    decode_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(DECODE_SLOTS))


def page_html() -> bytes:
    """The web page, a file of this package (no external assets: it works offline)."""
    return resources.files("univg.serving").joinpath("static/index.html").read_bytes()


def _state(request: HttpRequest) -> ServerState:
    return request.app.state.univg


def _max_tokens(state: ServerState, *asked: int | None) -> int:
    limits = state.config.limits
    value = next((a for a in asked if a is not None), limits.default_max_tokens)
    if value > limits.max_tokens:
        raise bad_request(
            f"{value} tokens asked for; this server generates at most {limits.max_tokens}", "max_tokens"
        )
    return value


def _check_texts(state: ServerState, texts: Sequence[tuple[str, str]]) -> None:
    limit = state.config.limits.max_text_chars
    total = sum(len(text) for _, text in texts)
    if total > limit:
        raise bad_request(f"the request's text is {total} characters; this server takes at most {limit}")
    for param, text in texts:
        check_text(text, param, state.forbidden_tokens)


def _check_image_count(state: ServerState, count: int) -> None:
    limit = state.config.limits.max_images
    if count > limit:
        raise bad_request(f"{count} images; this server takes at most {limit} per request")


def _submit(state: ServerState, request: Request, options: GenerationOptions, on_token: Any = None) -> Job:
    try:
        return state.scheduler.submit(request, options, on_token)
    except QueueFullError as exc:
        raise ApiError(
            503, str(exc), kind="server_busy", headers={"Retry-After": str(exc.retry_after_s)}
        ) from None


async def _result(job: Job) -> Prediction:
    try:
        return await job.future
    except ShuttingDownError as exc:
        raise ApiError(503, str(exc), kind="server_busy") from None
    except ValueError as exc:  # the request could not run (prompt too long, bad image): its own 4xx
        raise bad_request(str(exc)) from None


async def _decode(state: ServerState, sources: ImageSources, *, raw_base64: bool) -> list[LoadedImage]:
    """Decode every image of a request off the event loop (uploaded bytes, or references to read).

    A few requests decode at a time, so many large images at once cannot exhaust memory.
    """

    def decode_all() -> list[LoadedImage]:
        return [
            decode_image(source, param, state.image_policy)
            if isinstance(source, bytes)
            else image_from_reference(source, param, state.image_policy, raw_base64=raw_base64)
            for param, source in sources
        ]

    async with state.decode_slots:
        return await run_in_threadpool(decode_all)


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: HttpRequest) -> Response:
    state = _state(request)
    config = state.config
    if body.model != config.model_name:
        raise ApiError(
            404,
            f"this server serves the model {config.model_name!r} only",
            param="model",
            kind="model_not_found",
        )
    if len(body.messages) > config.limits.max_messages:
        raise bad_request(
            f"{len(body.messages)} messages; this server takes at most {config.limits.max_messages}"
        )
    messages, references, texts = to_hf_messages(body.messages)
    _check_image_count(state, len(references))
    _check_texts(state, texts)
    max_tokens = _max_tokens(state, body.max_completion_tokens, body.max_tokens)
    options = generation_options(max_tokens, body.temperature, body.top_p, body.seed)
    images = await _decode(state, list(references), raw_base64=False)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    chat = Request(question="", images=images, messages=messages, id=completion_id)
    if not body.stream:
        prediction = await _result(_submit(state, chat, options))
        return SafeJSONResponse(chat_completion(completion_id, config.model_name, prediction, max_tokens))

    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue[int | None] = asyncio.Queue()
    job = _submit(state, chat, options, lambda token: loop.call_soon_threadsafe(tokens.put_nowait, token))
    job.future.add_done_callback(lambda _future: tokens.put_nowait(None))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = _stream(state, job, tokens, completion_id, max_tokens, include_usage)
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


class _Detokenizer:
    """Turns a growing list of token ids into text deltas, holding back incomplete characters."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self.sent = ""

    def push(self, token: int) -> str:
        self._ids.append(token)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=False)
        if text.endswith("\ufffd") or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=True)}\n\n"


async def _stream(
    state: ServerState,
    job: Job,
    tokens: asyncio.Queue[int | None],
    completion_id: str,
    max_tokens: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    model = state.config.model_name
    detokenizer = _Detokenizer(state.predictor.processor.tokenizer)
    yield _event(chat_chunk(completion_id, model, {"role": "assistant", "content": ""}))
    while (token := await tokens.get()) is not None:
        delta = detokenizer.push(token)
        if delta:
            yield _event(chat_chunk(completion_id, model, {"content": delta}))
    try:
        prediction = await _result(job)
    except ApiError as exc:  # the stream has started: the error is the last event, as OpenAI sends it
        yield _event(exc.body())
        return
    # The final text is the non-streamed answer; send whatever the deltas held back.
    rest = prediction.text[len(detokenizer.sent) :] if prediction.text.startswith(detokenizer.sent) else ""
    if rest:
        yield _event(chat_chunk(completion_id, model, {"content": rest}))
    yield _event(chat_chunk(completion_id, model, {}, finish_reason(prediction, max_tokens)))
    if include_usage:
        yield _event(chat_chunk(completion_id, model, {}, usage_counts=usage(prediction)))
    yield "data: [DONE]\n\n"


async def _ground_form(state: ServerState, request: HttpRequest) -> tuple[GroundFields, ImageSources]:
    limits = state.config.limits
    try:
        form = await request.form(
            max_files=limits.max_images, max_fields=16, max_part_size=4 * limits.max_text_chars + 64
        )
    except MultiPartException as exc:
        raise bad_request(f"multipart body: {exc.message}") from None
    except HTTPException as exc:  # Starlette reports the form limits as a 400
        if exc.status_code != 400:
            raise
        raise bad_request(f"multipart body: {exc.detail}") from None
    uploads = form.getlist("images")
    if not uploads or not all(isinstance(upload, UploadFile) for upload in uploads):
        raise bad_request("upload the images as files in the field 'images'", "images")
    fields = {key: value for key, value in form.multi_items() if key != "images" and isinstance(value, str)}
    try:
        settings = GroundFields.model_validate(fields)
    except ValidationError as exc:
        raise bad_request(validation_message(exc.errors())) from None
    return settings, [(f"images[{i}]", await upload.read()) for i, upload in enumerate(uploads)]  # type: ignore[union-attr]


async def _ground_json(request: HttpRequest) -> tuple[GroundFields, ImageSources]:
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad_request(f"malformed JSON: {exc.msg} (at character {exc.pos})") from None
    except (UnicodeDecodeError, RecursionError):
        raise bad_request("malformed JSON: not UTF-8 text, or nested too deeply") from None
    try:
        body = GroundRequest.model_validate(payload)
    except ValidationError as exc:
        raise bad_request(validation_message(exc.errors())) from None
    return body, [(f"images[{i}]", image) for i, image in enumerate(body.images)]


@router.post("/v1/ground")
async def ground(request: HttpRequest) -> Response:
    """Ground a question in images: the model's text, the box (0..1 and pixels) and its image."""
    arrived = time.perf_counter()
    state = _state(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        settings, sources = await _ground_form(state, request)
    elif kind == "application/json":
        settings, sources = await _ground_json(request)
    else:
        raise ApiError(415, "send application/json, or multipart/form-data with the images as files")
    _check_image_count(state, len(sources))
    _check_texts(state, [("question", settings.question)])
    max_tokens = _max_tokens(state, settings.max_tokens)
    options = generation_options(max_tokens, settings.temperature, settings.top_p, settings.seed)
    images = await _decode(state, sources, raw_base64=True)
    query = Request(
        question=settings.question,
        images=images,
        id=f"ground-{uuid.uuid4().hex}",
        simple_reference=settings.simple_reference,
        style=settings.style,
    )
    job = _submit(state, query, options)
    prediction = await _result(job)
    reply = _ground_reply(state, prediction, settings.question)
    reply["latency"] = {
        "queue_s": round((job.started or arrived) - job.enqueued, 4),
        "batch_s": round(prediction.timing.total_s, 4),
        "total_s": round(time.perf_counter() - arrived, 4),
    }
    reply["batch_size"] = job.batch_size
    return SafeJSONResponse(reply)


def _ground_reply(state: ServerState, prediction: Prediction, question: str) -> dict[str, Any]:
    """The box and the image it is in: the one the answer names, the only one, or the one the question names.

    Many grounding models answer a box without saying which image it is in; the question usually
    says ("... in the second image"), so the page can still draw it (`target_source` tells which).
    """
    box, pixels, target = prediction.box, prediction.box_pixels, prediction.target_image
    source = None
    if target is not None:
        source = "single image" if len(prediction.image_sizes) == 1 else "answer"
    elif box is not None:
        asked = extract_target_image(question)
        if asked is not None and 0 <= asked < len(prediction.image_sizes):
            target, source = asked, "question"
            pixels = box_to_pixels(box, prediction.image_sizes[asked])
    return {
        "model": state.config.model_name,
        "text": prediction.text,
        "box": list(box) if box is not None and target is not None else None,
        "box_pixels": list(pixels) if pixels is not None and target is not None else None,
        "raw_box": list(prediction.raw_box) if prediction.raw_box is not None else None,
        "target_image": target,
        "target_source": source,
        "format_ok": prediction.format_ok,
        "image_sizes": [list(size) for size in prediction.image_sizes],
        "usage": usage(prediction),
    }


@router.get("/v1/models")
async def models(request: HttpRequest) -> Response:
    return SafeJSONResponse(model_list(_state(request).config.model_name))


@router.get("/healthz")
async def healthz(request: HttpRequest) -> Response:
    state = _state(request)
    limits = state.config.limits
    return SafeJSONResponse(
        {
            "status": "ok",
            "model": state.config.model_name,
            "queue_depth": state.scheduler.depth,
            "max_batch": state.config.max_batch,
            "max_queue": state.config.max_queue,
            "auth_required": state.config.api_key is not None,
            "url_fetch": state.config.allow_url_fetch,
            "limits": {
                "max_images": limits.max_images,
                "max_text_chars": limits.max_text_chars,
                "max_tokens": limits.max_tokens,
                "default_max_tokens": limits.default_max_tokens,
                "max_body_bytes": limits.max_body_bytes,
                "max_image_pixels": limits.max_image_pixels,
            },
        }
    )


@router.get("/metrics")
async def metrics(request: HttpRequest) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


# The page needs nothing from elsewhere: its script, styles and images are inline or local blobs.
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@router.get("/")
async def page(request: HttpRequest) -> Response:
    return HTMLResponse(_state(request).page, headers={"Content-Security-Policy": PAGE_POLICY})
