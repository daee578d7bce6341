"""The image and video loader: sizes, orientation, and a clear error for every bad file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from univg.core.resize import smart_resize
from univg.data.images import (
    MAX_IMAGE_PIXELS,
    ImageLoadError,
    LoadedImage,
    MissingImageError,
    decode_image_bytes,
    list_frames,
    load_image,
    load_video_frames,
    probe_image,
    uniform_frame_indices,
)


def _save(path: Path, size: tuple[int, int], color: tuple[int, int, int] = (200, 30, 30), **kwargs) -> Path:
    Image.new("RGB", size, color).save(path, **kwargs)
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims `width` x `height`: a decompression bomb as far as PIL knows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_load_image_resizes_like_qwen2vl(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", (1000, 700))
    loaded = load_image(path)
    height, width = smart_resize(700, 1000)
    assert isinstance(loaded, LoadedImage)
    assert loaded.original_size == (1000, 700)
    assert loaded.resized_size == (width, height) == loaded.image.size
    assert loaded.image.mode == "RGB"
    assert loaded.path == str(path)
    assert width * height <= 401_408 and width % 28 == 0 and height % 28 == 0


def test_min_and_max_pixels_are_honoured(tmp_path: Path) -> None:
    path = _save(tmp_path / "big.jpg", (1600, 1200))
    small = load_image(path, max_pixels=100_000)
    assert small.image.size[0] * small.image.size[1] <= 100_000
    tiny = load_image(_save(tmp_path / "tiny.png", (20, 20)), min_pixels=200 * 200)
    assert tiny.image.size[0] * tiny.image.size[1] >= 200 * 200


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = _save(tmp_path / "rotated.jpg", (560, 280), exif=exif.tobytes())
    loaded = load_image(path)
    assert loaded.original_size == (280, 560)
    assert loaded.resized_size[1] > loaded.resized_size[0]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_any_mode_becomes_rgb(tmp_path: Path, mode: str) -> None:
    image = Image.new(mode, (64, 64))
    loaded = load_image(image)
    assert loaded.image.mode == "RGB"
    assert loaded.path == "<in-memory image>"


def test_in_memory_image_is_not_modified(tmp_path: Path) -> None:
    image = Image.new("RGBA", (300, 200), (1, 2, 3, 4))
    loaded = load_image(image)
    assert image.mode == "RGBA" and image.size == (300, 200)
    assert loaded.image is not image
    assert loaded.original_size == (300, 200)


def test_already_resized_image_is_left_alone(tmp_path: Path) -> None:
    first = load_image(_save(tmp_path / "a.png", (999, 555)))
    second = load_image(first.image)
    assert second.resized_size == first.resized_size == second.original_size
    assert np.array_equal(np.asarray(second.image), np.asarray(first.image))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000))
def test_smart_resize_is_idempotent(height: int, width: int) -> None:
    """Why pre-resizing is safe: the processor maps our output to itself."""
    if max(height, width) / min(height, width) > 200:
        return
    resized = smart_resize(height, width)
    assert smart_resize(*resized) == resized


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"nope\.jpg: file not found"):
        load_image(tmp_path / "nope.jpg")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="not a file"):
        load_image(tmp_path)


def test_non_image_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture")
    with pytest.raises(ImageLoadError, match=r"notes\.jpg: not an image") as info:
        load_image(path)
    assert info.value.path == str(path)


def test_truncated_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "cut.jpg"
    Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg: truncated"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _png_header_only(tmp_path / "bomb.png", 30_000, 30_000)
    with pytest.raises(ImageLoadError, match=r"bomb\.png: refused as a decompression bomb"):
        load_image(path)


def test_custom_pixel_limit(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", (200, 200))
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path, max_image_pixels=10_000)


def test_extreme_aspect_ratio_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="aspect ratio"):
        load_image(_save(tmp_path / "strip.png", (5000, 10)))


@pytest.mark.parametrize(
    ("total", "num", "expected"),
    [
        (100, 6, [0, 20, 40, 59, 79, 99]),
        (6, 6, [0, 1, 2, 3, 4, 5]),
        (3, 6, [0, 1, 2]),
        (0, 6, []),
        (9, 1, [4]),
        (10, 2, [0, 9]),
    ],
)
def test_uniform_frame_indices(total: int, num: int, expected: list[int]) -> None:
    assert uniform_frame_indices(total, num) == expected


@given(st.integers(1, 10_000), st.integers(1, 64))
def test_uniform_frame_indices_properties(total: int, num: int) -> None:
    indices = uniform_frame_indices(total, num)
    assert len(indices) == min(total, num)
    assert indices == sorted(set(indices))
    assert all(0 <= i < total for i in indices)


def _frame_folder(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        _save(folder / f"frame{i}.jpg", (120, 90), color=(i * 10 % 256, 0, 0))
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_frames_are_in_natural_order(tmp_path: Path) -> None:
    folder = _frame_folder(tmp_path / "clip", 12)
    assert [p.name for p in list_frames(folder)][:3] == ["frame0.jpg", "frame1.jpg", "frame2.jpg"]
    assert list_frames(folder)[-1].name == "frame11.jpg"


def test_video_frames_from_folder(tmp_path: Path) -> None:
    folder = _frame_folder(tmp_path / "clip", 12)
    frames, indices = load_video_frames(folder)
    assert indices == [0, 2, 4, 7, 9, 11]
    assert [Path(f.path).name for f in frames] == [f"frame{i}.jpg" for i in indices]
    assert all(f.original_size == (120, 90) for f in frames)


def test_empty_frame_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageLoadError, match="no images"):
        load_video_frames(tmp_path / "empty")


def _write_video(path: Path, count: int, size: tuple[int, int] = (128, 96)) -> Path:
    """A video whose frame k is a flat gray of level 10 * k, so decoded frames can be identified."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for k in range(count):
            array = np.full((size[1], size[0], 3), 10 * k, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_video_frames_from_file(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "clip.mp4", 20)
    frames, indices = load_video_frames(path, num_frames=4, max_pixels=50_000)
    assert indices == [0, 6, 13, 19]
    assert [f.path for f in frames] == [f"{path}#frame={i}" for i in indices]
    levels = [float(np.asarray(f.image).mean()) for f in frames]
    assert levels == pytest.approx([10 * i for i in indices], abs=6)
    assert all(f.original_size == (128, 96) for f in frames)


def test_broken_video_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(ImageLoadError, match=r"clip\.mp4: unreadable video"):
        load_video_frames(path)


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_video_frames(tmp_path / "none.mp4")


def test_probe_image_reads_the_upright_size_without_decoding(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    assert probe_image(_save(tmp_path / "rotated.jpg", (560, 280), exif=exif.tobytes())) == (280, 560)
    assert probe_image(_png_header_only(tmp_path / "header.png", 4000, 3000)) == (4000, 3000)
    with pytest.raises(MissingImageError, match="file not found"):
        probe_image(tmp_path / "none.png")


def test_probe_image_finds_truncation_only_when_decoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "cut.jpg"
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:3000])
    assert probe_image(path) == (200, 200)
    with pytest.raises(ImageLoadError, match="truncated"):
        probe_image(path, decode=True)


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_decoded_bytes_equal_the_file_loaded(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8))
    data = _encoded(image.convert("P") if fmt == "GIF" else image, fmt)
    path = tmp_path / f"a.{fmt.lower()}"
    path.write_bytes(data)
    from_bytes = load_image(decode_image_bytes(data, name="upload"))
    from_file = load_image(path)
    assert from_bytes.original_size == from_file.original_size == (130, 90)
    assert np.array_equal(np.asarray(from_bytes.image), np.asarray(from_file.image))


def test_decoding_bytes_refuses_what_a_stranger_may_send(tmp_path: Path) -> None:
    png = _encoded(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    bomb = _png_header_only(tmp_path / "bomb.png", 30_000, 30_000).read_bytes()
    cases = {
        "not an image": (b"GIF89a but not really", "not an image"),
        "empty": (b"", "not an image"),
        "truncated": (png[: len(png) // 2], "truncated or corrupt"),
        "bomb": (bomb, "decompression bomb"),
        "over the caller's limit": (png, "decompression bomb"),
        "a format uploads may not use": (_encoded(Image.new("RGB", (8, 8)), "TIFF"), "accepted formats"),
    }
    for case, (data, reason) in cases.items():
        limit = 1_000 if case == "over the caller's limit" else MAX_IMAGE_PIXELS
        with pytest.raises(ImageLoadError, match=reason) as error:
            decode_image_bytes(data, name="images[1]", max_image_pixels=limit)
        assert error.value.path == "images[1]", case


_PNG = _encoded(Image.new("RGB", (20, 12), (9, 99, 199)), "PNG")


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, len(_PNG) - 1), st.integers(0, 255)).map(
            lambda edit: _PNG[: edit[0]] + bytes([edit[1]]) + _PNG[edit[0] + 1 :]
        ),
        st.integers(0, len(_PNG)).map(lambda cut: _PNG[:cut]),
    )
)
def test_any_bytes_decode_or_fail_as_an_image_load_error(data: bytes) -> None:
    try:
        image = decode_image_bytes(data, name="upload")
    except ImageLoadError as error:
        assert error.path == "upload" and error.reason
    else:
        assert image.size[0] * image.size[1] > 0


def test_a_prepared_image_is_taken_as_it_is_for_its_own_budget() -> None:
    prepared = load_image(Image.new("RGB", (1000, 700)), max_pixels=100_000)
    assert load_image(prepared, max_pixels=100_000) is prepared
    with pytest.raises(ImageLoadError, match="prepared at"):
        load_image(prepared, max_pixels=401_408)
