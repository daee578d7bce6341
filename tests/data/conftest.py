"""Fixture files and generated images for the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FORMATS_DIR = FIXTURES / "formats"
MIG_BENCH_FULL = FIXTURES / "mig_bench" / "MIG_data.json.gz"
MIG_BENCH_SAMPLE = FIXTURES / "mig_bench" / "sample.json"
# Every generated image has this size, so pixel boxes in the fixtures have known canonical values:
# [64, 48, 320, 240] is (0.1, 0.1, 0.5, 0.5).
IMAGE_SIZE = (640, 480)

# The images the hand-written fixtures name, relative to the image root.
FIXTURE_IMAGES = (
    *(f"mg/{n}.jpg" for n in "abcd"),
    *(f"sft/{n}.jpg" for n in "ab"),
    *(f"rl/{n}.jpg" for n in "abc"),
    "coco/train2014/COCO_train2014_000000000009.jpg",
    "dataset/coco/train2014/COCO_train2014_000000000009.jpg",
    "COCO_train2014_000000000001.jpg",
    "COCO_train2014_000000000002.jpg",
    "lisa/a.jpg",
    "a.jpg",
    *(f"vid1/{i:05d}.jpg" for i in range(10)),
    *(f"rv/{i}.jpg" for i in range(6)),
)


def _make_image(path: Path, size: tuple[int, int] = IMAGE_SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 30)).save(path)
    return path


@pytest.fixture(scope="session")
def make_image() -> Callable[..., Path]:
    """``make_image(path, size=(640, 480))``: write a plain RGB image, creating folders."""
    return _make_image


@pytest.fixture(scope="session")
def formats_dir() -> Path:
    """Hand-written records in every format, valid and malformed (see each test for which is which)."""
    return FORMATS_DIR


@pytest.fixture(scope="session")
def mig_bench_full() -> Path:
    """The real MIG-Bench annotations, all 4,295 records (MIT licence, LICENSE beside it)."""
    return MIG_BENCH_FULL


@pytest.fixture(scope="session")
def mig_bench_sample() -> Path:
    """13 real MIG-Bench records, one or more per task, including two malformed answers."""
    return MIG_BENCH_SAMPLE


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every image the format fixtures name (640x480), plus one non-image file (lisa/notes.jpg)."""
    root = tmp_path_factory.mktemp("images")
    for relative in FIXTURE_IMAGES:
        _make_image(root / relative)
    (root / "lisa" / "notes.jpg").write_text("not an image")
    return root
