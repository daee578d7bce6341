"""What a server is allowed to accept and how it batches: plain dataclasses the CLI fills in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """Bounds on every request, so no input can make the server read, decode or generate without end.

    The defaults take MIG-Bench-sized requests (a few images, one question) with room to spare.
    """

    max_body_bytes: int = 32 * 2**20  # the whole HTTP body, base64 images included
    max_images: int = 16  # per request
    max_image_pixels: int = 40_000_000  # per image, from its header, before decoding (bombs)
    max_text_chars: int = 8_000  # all text of a request together (question, or every chat message)
    max_messages: int = 64  # chat turns per request
    max_tokens: int = 1_024  # the most `max_tokens` a request may ask for
    default_max_tokens: int = 256  # when a request does not say (the paper's completion length)
    url_fetch_max_bytes: int = 16 * 2**20  # with --allow-url-fetch: the most one image URL may send
    url_fetch_timeout_s: float = 10.0  # with --allow-url-fetch: the whole fetch of one URL
    url_fetch_max_redirects: int = 3


@dataclass(frozen=True)
class ServeConfig:
    """How the server behaves. `api_key` None means no authentication (the default, on loopback)."""

    model_name: str  # the name clients put in "model" (GET /v1/models lists it)
    max_batch: int = 8
    max_wait_ms: float = 10.0  # how long the first request of a batch waits for company
    max_queue: int = 64  # requests waiting beyond the running batch; more get 503 + Retry-After
    api_key: str | None = None
    allow_url_fetch: bool = False
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.limits.default_max_tokens > self.limits.max_tokens:
            raise ValueError(
                f"default_max_tokens ({self.limits.default_max_tokens}) exceeds max_tokens "
                f"({self.limits.max_tokens})"
            )
