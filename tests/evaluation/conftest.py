"""Fixture benchmarks in every format, the images they name, and prediction files for them.

Every fixture file holds seven records whose ground truth is the box (0.1, 0.1, 0.5, 0.5) of a
640x480 image (pixels [64, 48, 320, 240]); record 3's box is inverted, so it must be excluded.
MIG_data.json adds two diff pairs (records 7 and 8).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IMAGE_SIZE = (640, 480)
IMAGES = (
    "img/a.jpg",
    "img/b.jpg",
    "COCO_train2014_000000000001.jpg",
    *(f"vid1/{i:05d}.jpg" for i in range(10)),
    *(f"rv/{i}.jpg" for i in range(6)),
)


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with every image the fixture benchmarks name, each 640x480 with its own colour."""
    root = tmp_path_factory.mktemp("eval-images")
    for number, name in enumerate(IMAGES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", IMAGE_SIZE, (20 * number % 256, 120, 60)).save(path)
    return root


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def write_predictions() -> Callable[[Path, list[dict]], Path]:
    """``write_predictions(path, records)``: a JSONL predictions file."""
    return _write
