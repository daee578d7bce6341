"""The teacher client: `openai.AsyncOpenAI` against any OpenAI-compatible ``URL/chat/completions``.

What a long paid run needs on top of the client:
- Retries of what can change: 429 (waiting as long as Retry-After / retry-after-ms says), 408, 409,
  5xx, time-outs, dropped connections, and replies that are cut short or not a chat completion (a
  transport fault, not the chain's fault), with exponential backoff and full jitter (tenacity). The
  client's own retries are off, so every attempt passes the rate limiter and is counted.
- No retry of a 4xx that will not change: 400/413/422 reject the sample (`RequestRefused`); 401, 402,
  403, 404 and an exhausted quota stop the run (`TeacherFatal`): every other request would fail too.
- `--rpm`: an even spacing of attempts (aiolimiter), so a burst never trips the provider's limit.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from univg.core.errors import UnivgError
from univg.cot.request import Messages

# Every retry is logged here, at INFO: `univg cot generate` sends this logger to OUT.log only (a storm of
# 429s would bury the progress bar).
retry_logger = logging.getLogger("univg.cot.retries")

RETRIED_STATUS = frozenset({408, 409, 429})
FATAL_STATUS = frozenset({401, 402, 403, 404})
FATAL_ERROR_CODES = frozenset({"insufficient_quota", "invalid_api_key", "model_not_found"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transport faults are retried."""

    max_attempts: int = 8
    initial_s: float = 1.0  # the first backoff's upper bound; each retry doubles it (full jitter)
    max_s: float = 60.0
    max_retry_after_s: float = 600.0  # longer Retry-After waits are cut to this

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial_s < 0 or self.max_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("retry attempts must be >= 1 and waits >= 0")


class TransportFault(Exception):
    """A failed attempt that another attempt may fix; `kind` counts it ('429', '5xx', 'timeout', ...)."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


class RequestRefused(Exception):
    """The teacher refused this request with a 4xx that retrying will not change."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class TeacherFatal(UnivgError):
    """Every request would fail (bad key, no such model or URL, no quota): the run stops."""


class TeacherUnavailable(Exception):
    """Transport faults went on through every attempt."""


@dataclass(frozen=True)
class Reply:
    """One chat completion: its text and what it cost in tokens (None when the server does not say)."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    attempts: int


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """How long a response asks to wait: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        value = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, value)
    return value if math.isfinite(value) and value >= 0 else None


def _error_code(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return error["code"]
    return None


def _status_error(status: int, message: str, headers: Any, body: Any) -> Exception:
    """What an HTTP error status means for the run."""
    code = _error_code(body)
    if status in FATAL_STATUS or code in FATAL_ERROR_CODES:
        return TeacherFatal(f"HTTP {status}{f' ({code})' if code else ''}: {message}")
    if status in RETRIED_STATUS:
        return TransportFault(str(status), message, retry_after_seconds(headers))
    if status >= 500:
        return TransportFault("5xx", f"HTTP {status}: {message}", retry_after_seconds(headers))
    return RequestRefused(status, message)


def _reply(completion: Any, attempts: int) -> Reply:
    """The text and usage of a chat completion; anything that is not one is a transport fault."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise TransportFault("malformed", f"not a chat completion: {str(completion)[:200]!r}")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if message is None or not (content is None or isinstance(content, str)):
        raise TransportFault("malformed", "the first choice holds no message text")
    usage = getattr(completion, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None)
    completion_tokens = getattr(usage, "completion_tokens", None)
    valid = isinstance(prompt, int) and isinstance(completion_tokens, int)
    return Reply(
        text=content or "",
        prompt_tokens=prompt if valid else None,
        completion_tokens=completion_tokens if valid else None,
        finish_reason=getattr(choices[0], "finish_reason", None),
        attempts=attempts,
    )


class TeacherClient:
    """Chat completions from one model at one OpenAI-compatible endpoint, with retries and a rate limit."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        rpm: float | None = None,
    ) -> None:
        from aiolimiter import AsyncLimiter
        from openai import AsyncOpenAI

        self.model = model
        self.retry = retry or RetryPolicy()
        self.faults: Counter[str] = (
            Counter()
        )  # transport faults seen, by kind (each one was retried or final)
        self.attempts = 0
        # vLLM and `univg cot teacher` need no key, but the client insists on one
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeout_s
        )
        self._limiter = AsyncLimiter(1, 60.0 / rpm) if rpm else None

    async def close(self) -> None:
        await self._client.close()

    async def complete(
        self, messages: Messages, *, max_tokens: int, temperature: float, seed: int | None = None
    ) -> Reply:
        """One chat completion, retried through transport faults; see the module docstring for errors."""
        from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransportFault),
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(
                        messages, max_tokens, temperature, seed, attempt.retry_state.attempt_number
                    )
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise TeacherUnavailable(
                f"no reply after {self.retry.max_attempts} attempts; last: {last}"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: Any) -> float:
        """Retry-After when the server gave one, else exponential backoff with full jitter."""
        from tenacity import wait_random_exponential

        fault = state.outcome.exception() if state.outcome else None
        if isinstance(fault, TransportFault) and fault.retry_after is not None:
            return min(fault.retry_after, self.retry.max_retry_after_s)
        return wait_random_exponential(multiplier=self.retry.initial_s, max=self.retry.max_s)(state)

    def _log_retry(self, state: Any) -> None:
        fault = state.outcome.exception()
        retry_logger.info(
            "attempt %d failed (%s); retrying in %.3f s",
            state.attempt_number,
            fault,
            state.next_action.sleep if state.next_action else 0.0,
        )

    async def _attempt(
        self, messages: Messages, max_tokens: int, temperature: float, seed: int | None, number: int
    ) -> Reply:
        import openai

        if self._limiter is not None:
            await self._limiter.acquire()
        self.attempts += 1
        try:
            completion = await self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=temperature,
                **({"seed": seed} if seed is not None else {}),
            )
            return _reply(completion, number)
        except openai.APITimeoutError as exc:
            fault: Exception = TransportFault("timeout", str(exc))
        except openai.APIConnectionError as exc:
            fault = TransportFault("connection", f"{exc}: {exc.__cause__ or ''}".rstrip(": "))
        except openai.APIStatusError as exc:
            fault = _status_error(exc.status_code, exc.message, exc.response.headers, exc.body)
        except ValueError as exc:  # a body that is cut short or not JSON
            fault = TransportFault("malformed", f"unreadable body: {exc}")
        except TransportFault as exc:
            fault = exc
        if isinstance(fault, TransportFault):
            self.faults[fault.kind] += 1
        raise fault
