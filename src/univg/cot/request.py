"""The teacher's requests in the OpenAI chat format: the images as data URLs, then the prompt text.

Image files go as they are (PNG, JPEG, WebP and GIF are what OpenAI-compatible servers accept), so the
teacher sees the pixels the boxes were drawn on; other formats are decoded by the one image loader and
sent as PNG. Images come first, in the sample's order, as Qwen2-VL's chat format puts them, so "the
second image" in a question is the second image the teacher sees.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from PIL import Image

from univg.data.images import load_image, probe_image

SENT_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}

Messages = list[dict[str, Any]]


def image_data_url(path: str | Path) -> str:
    """A ``data:`` URL of an image file; raises `univg.data.images.ImageLoadError` naming a bad file."""
    source = Path(path)
    probe_image(source, decode=True)
    with Image.open(source) as image:
        kind = image.format or ""
    if kind in SENT_AS_IS:
        data, mime = source.read_bytes(), SENT_AS_IS[kind]
    else:
        buffer = io.BytesIO()
        load_image(source).image.save(buffer, format="PNG")
        data, mime = buffer.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def chat_messages(system: str, text: str, image_urls: list[str]) -> Messages:
    """A system message and a user turn holding the images in order, then the text."""
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    content.append({"type": "text", "text": text})
    messages: Messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    return messages


def decode_data_url(url: str) -> bytes | None:
    """The bytes of a base64 ``data:`` URL, or None when it is not one."""
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        return None
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except ValueError:
        return None
