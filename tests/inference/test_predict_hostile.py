"""`univg predict` checks its question, images and drawing target before it loads any model, and says
what is wrong in one line with the flag to use."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from univg.cli.main import main
from univg.data.images import MAX_IMAGE_PIXELS


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path)
    return path


def _link(tmp_path: Path) -> str:
    (tmp_path / "target.png").write_bytes(b"keep me")
    (tmp_path / "link.png").symlink_to(tmp_path / "target.png")
    return str(tmp_path / "link.png")


def _below_a_file(tmp_path: Path) -> str:
    (tmp_path / "file").write_text("x")
    return str(tmp_path / "file" / "out.png")


def _bomb(tmp_path: Path) -> str:
    """A 10000x10000 PNG: past univg's pixel limit, and past the size Pillow warns about on open."""
    path = tmp_path / "bomb.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Image.new("1", (10_000, 10_000)).save(path)
    return str(path)


def _empty(tmp_path: Path) -> str:
    (tmp_path / "frames").mkdir()
    return str(tmp_path / "frames")


def _file(tmp_path: Path, name: str) -> str:
    (tmp_path / name).write_bytes(b"not a video at all")
    return str(tmp_path / name)


# (name, extra arguments given the tmp folder and a good image, what stderr must say)
CASES: list[tuple[str, Callable[[Path, Path], list[str]], str]] = [
    ("empty question", lambda t, i: ["--question", "  ", "--image", str(i)], "--question is empty"),
    (
        "question not UTF-8",
        lambda t, i: ["--question", "the \udcff cat", "--image", str(i)],
        "--question holds a lone surrogate U+DCFF at character 4 (not valid UTF-8 text)",
    ),
    (
        "missing image",
        lambda t, i: ["--question", "q", "--image", str(t / "no.png")],
        "no.png: not found; check --image",
    ),
    (
        "image is a folder",
        lambda t, i: ["--question", "q", "--image", str(t)],
        "is a folder; expected a file",
    ),
    (
        "image not an image",
        lambda t, i: ["--question", "q", "--image", str((t / "x.png").write_text("text") and t / "x.png")],
        "x.png: not an image",
    ),
    ("image bomb", lambda t, i: ["--question", "q", "--image", _bomb(t)], "refused as a decompression bomb"),
    (
        "drawing over a symbolic link",
        lambda t, i: ["--question", "q", "--image", str(i), "--draw", _link(t)],
        "link.png: is a symbolic link",
    ),
    (
        "drawing over a device",
        lambda t, i: ["--question", "q", "--image", str(i), "--draw", os.devnull],
        "/dev/null: is a device",
    ),
    (
        "drawing below a file",
        lambda t, i: ["--question", "q", "--image", str(i), "--draw", _below_a_file(t)],
        "is a file, not a folder",
    ),
    (
        "drawing in no image format",
        lambda t, i: ["--question", "q", "--image", str(i), "--draw", str(t / "out.txt")],
        ".txt names no image format; use .png or .jpg",
    ),
    (
        "video folder without frames",
        lambda t, i: ["--question", "q", "--video", _empty(t)],
        "frame folder holds no images",
    ),
    (
        "video that is not one",
        lambda t, i: ["--question", "q", "--video", _file(t, "v.mp4")],
        "v.mp4: unreadable video",
    ),
    (
        "missing video",
        lambda t, i: ["--question", "q", "--video", str(t / "v.mp4")],
        "v.mp4: not found; check --video",
    ),
]


@pytest.mark.parametrize(("name", "arguments", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_request_is_refused_before_the_model_loads(tmp_path, image, capsys, name, arguments, message):
    # The model path does not exist: an error about the request proves it was checked first.
    argv = ["predict", "--model", str(tmp_path / "no-model"), *arguments(tmp_path, image)]
    assert main(argv) == (1 if name.startswith(("image not", "image bomb", "video")) else 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("univg predict: "), err
    assert message in err[0]
    if name == "drawing over a symbolic link":
        assert (tmp_path / "target.png").read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--max-pixels", "0"), ("--frames", "0"), ("--max-new-tokens", "-1"), ("--frames", "x")],
)
def test_out_of_range_numbers_are_usage_errors(tmp_path, image, capsys, flag, value):
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--model", str(tmp_path), "--image", str(image), "--question", "q", flag, value])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"argument {flag}" in err[0]


def test_pillows_warning_does_not_reach_the_terminal(tmp_path):
    """Pillow warns before univg refuses the image: the user sees univg's line only."""
    argv = ["predict", "--model", str(tmp_path / "no-model"), "--question", "q", "--image", _bomb(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "univg", *argv], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"univg predict: {tmp_path / 'bomb.png'}: refused as a decompression bomb: 10000x10000 = 100000000 "
        f"pixels exceeds the limit of {MAX_IMAGE_PIXELS}"
    ]
