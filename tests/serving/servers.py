"""Helpers for the server tests: a real uvicorn server on loopback, images and requests to send it."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image, ImageDraw

from univg.inference.predictor import Predictor
from univg.models.loading import load_model_and_processor
from univg.serving.app import create_app, serve_in_background
from univg.serving.config import Limits, ServeConfig

SMALL = 112 * 112  # 16 image tokens per image: fast on CPU
# Tight limits, so every limit can be crossed by a small request.
TEST_LIMITS = Limits(
    max_body_bytes=2 * 2**20,
    max_images=4,
    max_image_pixels=1_000_000,
    max_text_chars=2_000,
    max_tokens=64,
    default_max_tokens=8,
)


@dataclass
class Running:
    """A server started by `serving`: its base URL and the predictor behind it."""

    url: str
    predictor: Predictor
    config: ServeConfig

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"


@contextmanager
def serving(predictor: Predictor, config: ServeConfig) -> Iterator[Running]:
    """Run `create_app(predictor, config)` under uvicorn on a free loopback port until the block ends.

    Generation uses one torch thread meanwhile: the test process also runs the clients, and on two
    shared cores two OpenMP threads spin against them (measured: 35 ms a batch with one, 1.2 s with two).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with serve_in_background(create_app(predictor, config)) as url:
            yield Running(url, predictor, config)
    finally:
        torch.set_num_threads(threads)


def tiny_predictor(model_dir: Path, max_batch: int = 8, max_pixels: int = SMALL) -> Predictor:
    return Predictor(load_model_and_processor(model_dir, max_pixels=max_pixels), batch_size=max_batch)


def scene(*shapes: tuple[str, tuple[int, int, int], tuple[int, int, int, int]]) -> bytes:
    """A 112x112 PNG of flat shapes ("circle" or "square", colour, pixel box), like the synthetic world's."""
    image = Image.new("RGB", (112, 112), (235, 235, 225))
    draw = ImageDraw.Draw(image)
    for kind, colour, box in shapes:
        (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


RED_CIRCLE = (50, 20, 90, 60)  # where `two_scenes()[1]` has its red circle, in pixels


def two_scenes() -> tuple[bytes, bytes]:
    """Two images; only the second holds a red circle (at RED_CIRCLE)."""
    first = scene(("square", (40, 90, 200), (10, 10, 40, 40)), ("circle", (30, 160, 60), (60, 60, 95, 95)))
    second = scene(("circle", (220, 40, 40), RED_CIRCLE), ("square", (240, 200, 30), (10, 70, 40, 100)))
    return first, second


def noise_png(width: int = 112, height: int = 112, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode("ascii")


def chat_body(text: str, *images: bytes, model: str = "tiny", **settings) -> dict:
    """An OpenAI chat request: the images first, then the text, in one user turn."""
    content = [{"type": "image_url", "image_url": {"url": data_url(image)}} for image in images]
    content.append({"type": "text", "text": text})
    return {"model": model, "messages": [{"role": "user", "content": content}], **settings}


def healthy(url: str) -> bool:
    response = httpx.get(url + "/healthz", timeout=10)
    return response.status_code == 200 and response.json()["status"] == "ok"
