"""Request and reply shapes: OpenAI chat completions (what the official client sends) and /v1/ground.

Requests are pydantic models, so a wrong type is refused with the field's path; replies are plain
dicts in exactly the shape OpenAI clients parse.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from univg.data.prompts import Messages
from univg.inference.predictor import GenerationOptions, Prediction

# Parameters that would change the answer and that this server cannot honour: refused, not ignored.
UNSUPPORTED = (
    "stop",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "audio",
    "prediction",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ImageUrl(_Model):
    url: str
    detail: str | None = None


class ContentPart(_Model):
    """One part of a message: ``{"type": "text", "text": ...}`` or ``{"type": "image_url", ...}``."""

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _has_its_field(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs 'text'")
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an image_url part needs 'image_url': {'url': ...}")
        return self


class ChatMessage(_Model):
    role: Literal["system", "user", "assistant"]
    content: list[ContentPart]

    @model_validator(mode="before")
    @classmethod
    def _text_content(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("content"), str):
            return {**data, "content": [{"type": "text", "text": data["content"]}]}
        return data


class StreamOptions(_Model):
    include_usage: bool = False


class ChatCompletionRequest(_Model):
    """The OpenAI chat-completions request, less what a grounding model cannot do."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in UNSUPPORTED:
                if data.get(name) not in (None, False, [], {}):
                    raise ValueError(f"'{name}' is not supported by this server")
        return data


class GroundFields(_Model):
    """/v1/ground settings, shared by its JSON and multipart forms."""

    question: str = Field(min_length=1)
    style: Literal["univg", "plain"] = "univg"
    simple_reference: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    seed: int | None = None


class GroundRequest(GroundFields):
    """/v1/ground as JSON: images are base64 or data URLs, in the order the question counts them."""

    images: list[str] = Field(min_length=1)


def generation_options(
    max_tokens: int, temperature: float | None, top_p: float | None, seed: int | None
) -> GenerationOptions:
    """Greedy when temperature is absent or 0 (reproducible, and batched == alone); else sampled."""
    if not temperature:
        return GenerationOptions(max_new_tokens=max_tokens)
    return GenerationOptions(
        max_new_tokens=max_tokens, do_sample=True, temperature=temperature, top_p=top_p or 1.0, seed=seed
    )


def to_hf_messages(
    messages: Sequence[ChatMessage],
) -> tuple[Messages, list[tuple[str, str]], list[tuple[str, str]]]:
    """OpenAI messages as the chat template's messages, plus (field, image URL) and (field, text) in order."""
    converted: Messages = []
    images: list[tuple[str, str]] = []
    texts: list[tuple[str, str]] = []
    for m, message in enumerate(messages):
        content: list[dict[str, Any]] = []
        for p, part in enumerate(message.content):
            where = f"messages[{m}].content[{p}]"
            if part.image_url is not None and part.type == "image_url":
                images.append((f"{where}.image_url.url", part.image_url.url))
                content.append({"type": "image"})
            else:
                texts.append((f"{where}.text", part.text or ""))
                content.append({"type": "text", "text": part.text or ""})
        converted.append({"role": message.role, "content": content})
    return converted, images, texts


def finish_reason(prediction: Prediction, max_tokens: int) -> str:
    return "length" if prediction.generated_tokens >= max_tokens else "stop"


def usage(prediction: Prediction) -> dict[str, int]:
    return {
        "prompt_tokens": prediction.prompt_tokens,
        "completion_tokens": prediction.generated_tokens,
        "total_tokens": prediction.prompt_tokens + prediction.generated_tokens,
    }


def chat_completion(
    completion_id: str, model: str, prediction: Prediction, max_tokens: int
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": prediction.text},
                "finish_reason": finish_reason(prediction, max_tokens),
            }
        ],
        "usage": usage(prediction),
    }


def chat_chunk(
    completion_id: str,
    model: str,
    delta: dict[str, str],
    finish: str | None = None,
    *,
    usage_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One streamed chunk; the usage chunk (stream_options.include_usage) has no choices."""
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if usage_counts is not None
        else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage_counts is not None:
        chunk["usage"] = usage_counts
    return chunk


def model_list(model: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "univg"}]}


def validation_message(errors: Sequence[Any], limit: int = 3) -> str:
    """pydantic errors as one line: ``messages[0].content[1].image_url: Field required; ...``."""
    parts = []
    for error in list(errors)[:limit]:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "not JSON")
            position = error.get("loc", ("body", None))[-1]
            parts.append(f"malformed JSON: {detail} (at character {position})")
            continue
        where = ""
        for item in error.get("loc", ()):
            if item == "body" and not where:
                continue
            where += f"[{item}]" if isinstance(item, int) else (f".{item}" if where else str(item))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = len(errors) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
