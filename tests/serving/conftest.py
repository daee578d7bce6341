"""Real uvicorn servers on loopback around real tiny models, shared by the server tests."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from servers import TEST_LIMITS, Running, serving, tiny_predictor

from univg.inference.predictor import Predictor
from univg.serving.config import ServeConfig


@pytest.fixture(scope="session")
def varied_predictor(tiny_varied_model_dir: Path) -> Predictor:
    return tiny_predictor(tiny_varied_model_dir)


@pytest.fixture(scope="session")
def server(varied_predictor: Predictor) -> Iterator[Running]:
    """The tiny model whose answers vary with the input, batching up to 8 requests within 50 ms."""
    config = ServeConfig(model_name="tiny", max_batch=8, max_wait_ms=50, limits=TEST_LIMITS)
    with serving(varied_predictor, config) as running:
        yield running


@pytest.fixture(scope="session")
def demo_server() -> Iterator[Running]:
    """The shipped demo base (a tiny Qwen2-VL that grounds simple references), for answers with real boxes."""
    base = Path(str(resources.files("univg") / "assets" / "demo_base"))
    config = ServeConfig(model_name="univg-demo-base", limits=TEST_LIMITS)
    with serving(tiny_predictor(base, max_pixels=401_408), config) as running:
        yield running
