"""Every check input from strangers meets before it reaches the model.

Images arrive inline (data URLs or base64) and are decoded by the one image loader with a pixel
limit read from the header, so a decompression bomb is refused before it is decoded. Local paths and
``file://`` are never read. URLs are fetched only when the server was started with
``--allow-url-fetch``, and then only over http(s), only from public addresses (every address a name
resolves to is checked, and the connection goes to the checked address, so a name cannot be
re-resolved to a private one in between), with size, time and redirect limits. Text may not hold
lone surrogates, control characters or the model's own control tokens.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.core.text import text_problem
from univg.data.images import ImageLoadError, LoadedImage, decode_image_bytes, prepare_image
from univg.models.tokenizer import GROUNDING_TOKENS

# Qwen2-VL's grounding tokens may appear in text (a referring expression, a previous answer's box);
# every other special token (<|image_pad|>, <|vision_start|>, <|im_start|>, ...) would change the
# prompt's structure and is refused.
TEXT_TOKENS = frozenset(GROUNDING_TOKENS)
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*);base64,", re.I)


class ApiError(Exception):
    """A request the server refuses; becomes an OpenAI-style JSON error with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": None}}


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, f"{param}: {message}" if param else message, param=param)


def special_tokens(tokenizer: Any) -> frozenset[str]:
    """The tokenizer's special tokens that text must not contain (all but the grounding ones)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    tokens = {token.content for token in added.values() if getattr(token, "special", False)}
    tokens.update(getattr(tokenizer, "all_special_tokens", []) or [])
    return frozenset(t for t in tokens if t and t not in TEXT_TOKENS)


def check_text(text: str, param: str, forbidden_tokens: Collection[str]) -> None:
    """Refuse text a tokenizer cannot encode faithfully or that would forge prompt structure."""
    problem = text_problem(text)
    if problem is not None:
        raise bad_request(problem, param)
    for token in forbidden_tokens:
        if token in text:
            raise bad_request(f"holds the model's control token {token}, which text may not contain", param)


@dataclass(frozen=True)
class ImagePolicy:
    """What an image reference may be and how large, from the server's configuration."""

    max_image_pixels: int
    allow_url_fetch: bool
    fetch_max_bytes: int
    fetch_timeout_s: float
    fetch_max_redirects: int
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS


def image_from_reference(reference: str, param: str, policy: ImagePolicy, *, raw_base64: bool) -> LoadedImage:
    """Decode the image a request names: a data URL, bare base64 (`raw_base64`), or an allowed URL."""
    stripped = reference.strip()
    match = _DATA_URL.match(stripped)
    if match:
        return decode_image(_base64_bytes(stripped[match.end() :], param), param, policy)
    scheme = urlsplit(stripped).scheme.lower() if ":" in stripped[:16] else ""
    if scheme in ("http", "https"):
        if not policy.allow_url_fetch:
            raise bad_request(
                "image URLs are not fetched unless the server runs with --allow-url-fetch; send the image "
                "inline as a data URL (data:image/png;base64,...)",
                param,
            )
        try:
            data = fetch_url(
                stripped,
                max_bytes=policy.fetch_max_bytes,
                timeout_s=policy.fetch_timeout_s,
                max_redirects=policy.fetch_max_redirects,
            )
        except FetchError as exc:
            raise bad_request(str(exc), param) from None
        return decode_image(data, param, policy)
    if scheme == "data":
        raise bad_request("a data URL must be base64: data:image/png;base64,...", param)
    if raw_base64 and not scheme:
        try:
            data = _base64_bytes(stripped, param)
        except ApiError:
            raise bad_request(
                "not base64 image data, a data URL or an http(s) URL (local paths and file:// URLs are "
                "never read)",
                param,
            ) from None
        return decode_image(data, param, policy)
    raise bad_request(
        "local paths, file:// and other non-http(s) URLs are never read; send the image inline as a "
        "data URL (data:image/png;base64,...)",
        param,
    )


def _base64_bytes(text: str, param: str) -> bytes:
    compact = "".join(text.split())
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("invalid base64 image data", param) from None
    if not data:
        raise bad_request("empty image data", param)
    return data


def decode_image(data: bytes, param: str, policy: ImagePolicy) -> LoadedImage:
    """Decode image bytes within the pixel limit and resize them for the model at once.

    Only the resized image waits in the queue, so a request's memory is bounded by the model's pixel
    budget, not by the (up to `max_image_pixels`) size it was sent at.
    """
    try:
        image = decode_image_bytes(data, name=param, max_image_pixels=policy.max_image_pixels)
        try:
            return prepare_image(
                image, path=param, min_pixels=policy.min_pixels, max_pixels=policy.max_pixels
            )
        finally:
            image.close()
    except ImageLoadError as exc:
        raise bad_request(exc.reason, param) from None


class FetchError(ValueError):
    """A URL that was not fetched: not allowed, unreachable, too large or too slow."""


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A globally routable unicast address: never loopback, private, link-local, reserved or multicast."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


AddressCheck = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]


def _resolve(url: str, address_allowed: AddressCheck) -> tuple[str, str]:
    """The checked address to connect to for `url`, and its host name; refuses what is not allowed."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise FetchError(f"refused to fetch {url!r}: only http and https URLs are fetched")
    if parts.username or parts.password:
        raise FetchError("refused to fetch a URL with credentials in it")
    host = parts.hostname
    if not host:
        raise FetchError(f"refused to fetch {url!r}: no host")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise FetchError(f"refused to fetch {url!r}: bad port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise FetchError(f"cannot resolve host {host!r}")
    for address in addresses:
        if not address_allowed(address):
            raise FetchError(
                f"refused to fetch from {host!r}: it resolves to {address}, which is not a public address "
                "(loopback, private, link-local and reserved addresses are never fetched)"
            )
    return str(addresses[0]), host


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    max_redirects: int = 3,
    address_allowed: AddressCheck = is_public_address,
) -> bytes:
    """GET `url` within the limits, following at most `max_redirects` redirects (each one checked)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout_s) as client:
        for _ in range(max_redirects + 1):
            address, host = _resolve(url, address_allowed)
            target = httpx.URL(url)
            extensions = {"sni_hostname": host} if target.scheme == "https" else {}
            headers = {"Host": target.netloc.decode("ascii"), "Accept": "image/*"}
            try:
                with client.stream(
                    "GET", target.copy_with(host=address), headers=headers, extensions=extensions
                ) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"fetching {url!r} answered HTTP {response.status_code}")
                    return _read_limited(response, url, max_bytes, deadline)
            except httpx.TimeoutException:
                raise FetchError(f"fetching {url!r} took longer than {timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"fetching {url!r} failed: {exc}") from None
    raise FetchError(f"fetching {url!r}: more than {max_redirects} redirects")


def _read_limited(response: Any, url: str, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"{url!r} sends {int(declared)} bytes, more than the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"{url!r} sends more than the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchError(f"fetching {url!r} took too long")
        chunks.append(chunk)
    return b"".join(chunks)
