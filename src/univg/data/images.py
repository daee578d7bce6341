"""The one image and video loader: what the model sees is what the boxes refer to.

Every image goes through the same steps as Qwen2-VL's processor would apply: EXIF orientation, RGB,
and `smart_resize` (sides multiples of 28, pixel count within [min_pixels, max_pixels]). Because the
result is already at the processor's size, the processor leaves it as it is, and Qwen2.5-VL pixel
boxes can be written against `resized_size`. Bad files raise `ImageLoadError` naming the file and the
problem instead of a bare PIL traceback deep inside a training step.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from univg.core.errors import UnivgError
from univg.core.resize import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    check_pixel_budget,
    resized_size,
    smart_resize,
)

if TYPE_CHECKING:
    from univg.data.schema import GroundingSample

# Larger images are refused before decoding: a small file that claims a huge size is a decompression
# bomb. PIL's own threshold (about 89 megapixels) is far above any real grounding image.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
DEFAULT_NUM_FRAMES = 6
# What images from outside (uploads, data URLs) may be: the formats browsers and cameras write.
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
# The official zero-shot scripts ground (and score) the third of the six sampled frames.
VIDEO_TARGET_FRAME = 2
FRAME_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})

# `_open_source` refuses an image over its pixel limit from the header, before decoding; Pillow's own
# warning about the same images would only repeat that, as a raw library warning on the terminal.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # rotations by 90 degrees: width and height swap


class ImageLoadError(UnivgError, ValueError):
    """An image or video that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(reason, path=path)
        self.path: str = str(path)


class MissingImageError(ImageLoadError):
    """The file is not there at all (as opposed to being there but unreadable)."""


@dataclass
class LoadedImage:
    """An image ready for the model, with the sizes needed to map boxes in and out."""

    image: Image.Image
    path: str
    original_size: tuple[int, int]  # (width, height) before resizing
    resized_size: tuple[int, int]  # (width, height) after resizing


# A path, a decoded image, or one already prepared (a server resizes uploads as they arrive).
ImageSource = str | os.PathLike[str] | Image.Image | LoadedImage


def _source_name(image: Image.Image) -> str:
    return str(getattr(image, "filename", "") or "<in-memory image>")


def _open_header(path: Path, max_image_pixels: int) -> Image.Image:
    """Open a file lazily (header only), turning every way it can fail into `ImageLoadError`."""
    name = str(path)
    if not path.exists():
        raise MissingImageError(name, "file not found")
    if not path.is_file():
        raise ImageLoadError(name, "not a file")
    return _open_source(path, name, max_image_pixels)


def _open_source(
    source: Path | BinaryIO, name: str, max_image_pixels: int, formats: Sequence[str] | None = None
) -> Image.Image:
    """Open an image lazily (header only) and refuse bombs; every failure is an `ImageLoadError`."""
    try:
        image = Image.open(source, formats=formats)
    except UnidentifiedImageError:
        accepted = f": accepted formats are {', '.join(formats)}" if formats else ""
        raise ImageLoadError(name, f"not an image (unrecognised format){accepted}") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"refused as a decompression bomb: {exc}") from None
    except OSError as exc:
        raise ImageLoadError(name, f"unreadable: {exc}") from None
    width, height = image.size
    if width * height > max_image_pixels:
        image.close()
        raise ImageLoadError(
            name,
            f"refused as a decompression bomb: {width}x{height} = {width * height} pixels "
            f"exceeds the limit of {max_image_pixels}",
        )
    return image


def _open(path: Path, max_image_pixels: int) -> Image.Image:
    """Open and fully decode a file, turning every way it can fail into `ImageLoadError`."""
    return _decode(_open_header(path, max_image_pixels), str(path))


def decode_image_bytes(
    data: bytes,
    *,
    name: str,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    formats: Sequence[str] = UPLOAD_FORMATS,
) -> Image.Image:
    """Decode an image received as bytes (an upload, a data URL), with the checks a file gets.

    Only `formats` are tried, so bytes from strangers never reach PIL's rarer decoders, and any
    decoder failure on them (PIL raises many kinds on crafted input) is an `ImageLoadError`.
    """
    try:
        return _decode(_open_source(io.BytesIO(data), name, max_image_pixels, formats), name)
    except ImageLoadError:
        raise
    except Exception as exc:
        raise ImageLoadError(name, f"corrupt: {type(exc).__name__}: {exc}") from None


def _decode(image: Image.Image, name: str) -> Image.Image:
    """Decode the pixels of an opened image; a truncated or corrupt one is an `ImageLoadError`."""
    try:
        image.load()
    except OSError as exc:
        image.close()
        reason = "truncated or corrupt" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageLoadError(name, f"{reason}: {exc}") from None
    return image


def prepare_image(
    image: Image.Image,
    *,
    path: str | None = None,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Orient, convert to RGB and `smart_resize` an already decoded image."""
    name = path if path is not None else _source_name(image)
    check_pixel_budget(min_pixels, max_pixels)  # a wrong setting is not the image's fault
    try:
        oriented = ImageOps.exif_transpose(image)  # always a new image: the caller's is never changed
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(name, f"bad EXIF data: {exc}") from None
    rgb = oriented if oriented.mode == "RGB" else oriented.convert("RGB")
    width, height = rgb.size
    try:
        new_height, new_width = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError as exc:
        raise ImageLoadError(name, f"cannot be resized for the model: {exc}") from None
    if (new_width, new_height) != (width, height):
        rgb = rgb.resize((new_width, new_height), Image.Resampling.BICUBIC)
    return LoadedImage(
        image=rgb, path=name, original_size=(width, height), resized_size=(new_width, new_height)
    )


def load_image(
    source: ImageSource,
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
) -> LoadedImage:
    """Load a file (or take an open PIL image) and prepare it exactly as the model will see it.

    `original_size` is the upright (EXIF-applied) size, the one a user's pixel boxes refer to. A
    `LoadedImage` is taken as it is when it was prepared for the same pixel budget.
    """
    if isinstance(source, LoadedImage):
        width, height = source.original_size
        expected = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
        if source.resized_size != (expected[1], expected[0]):
            raise ImageLoadError(
                source.path,
                f"prepared at {source.resized_size[0]}x{source.resized_size[1]}, but this pixel budget "
                f"makes {expected[1]}x{expected[0]}",
            )
        return source
    if isinstance(source, Image.Image):
        name = _source_name(source)
        width, height = source.size
        if width * height > max_image_pixels:
            raise ImageLoadError(name, f"refused: {width}x{height} exceeds {max_image_pixels} pixels")
        return prepare_image(source, path=name, min_pixels=min_pixels, max_pixels=max_pixels)
    path = Path(source)
    image = _open(path, max_image_pixels)
    try:
        return prepare_image(image, path=str(path), min_pixels=min_pixels, max_pixels=max_pixels)
    finally:
        image.close()


def probe_image(
    path: str | os.PathLike[str], *, decode: bool = False, max_image_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[int, int]:
    """The upright (EXIF-applied) (width, height) of an image file, reading only its header.

    Validators call this for every image of a data set, so it avoids decoding pixels unless `decode`
    is set (which is what finds truncated files). Raises `MissingImageError` or `ImageLoadError`.
    """
    opener = _open if decode else _open_header
    image = opener(Path(path), max_image_pixels)
    try:
        width, height = image.size
        try:
            orientation = image.getexif().get(EXIF_ORIENTATION)
        except (OSError, ValueError, SyntaxError):
            orientation = None
        return (height, width) if orientation in TRANSPOSING_ORIENTATIONS else (width, height)
    finally:
        image.close()


def target_resized_size(
    sample: GroundingSample, *, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[int, int]:
    """The (width, height) of a sample's target image as the processor resizes it: what Qwen2.5-VL pixel
    boxes refer to.

    From the original size a converter recorded in ``extra["target_size"]``, else from the image
    file's header (never a full decode), which raises `ImageLoadError` when it cannot be read.
    """
    recorded = sample.extra.get("target_size")
    original = (int(recorded[0]), int(recorded[1])) if recorded else probe_image(sample.target_path)
    return resized_size(original, min_pixels=min_pixels, max_pixels=max_pixels)


def uniform_frame_indices(total: int, num_frames: int = DEFAULT_NUM_FRAMES) -> list[int]:
    """`num_frames` indices spread evenly over `total` frames, first and last included.

    With fewer frames than asked for, every frame is used once (never duplicated).
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if total <= 0:
        return []
    if total <= num_frames:
        return list(range(total))
    if num_frames == 1:
        return [(total - 1) // 2]
    step = (total - 1) / (num_frames - 1)
    return [round(i * step) for i in range(num_frames)]


def _natural_key(name: str) -> list[int | str]:
    """Sort key putting "frame2" before "frame10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(directory: str | os.PathLike[str]) -> list[Path]:
    """The image files of a frame folder in playback (natural) order."""
    folder = Path(directory)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _decode_video(path: Path, wanted: set[int]) -> tuple[int, dict[int, Image.Image]]:
    """Decode a video once, keeping only the wanted frames; returns the real frame count too."""
    import av  # imported here: only video users pay for it

    frames: dict[int, Image.Image] = {}
    total = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageLoadError(str(path), "no video stream")
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                total = index + 1
                if index in wanted:
                    frames[index] = frame.to_image()
    except av.error.FFmpegError as exc:
        raise ImageLoadError(str(path), f"unreadable video: {exc}") from None
    return total, frames


def _video_frame_count(path: Path) -> int:
    """The frame count the container declares, or 0 when it does not say."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageLoadError(str(path), "no video stream")
            return int(container.streams.video[0].frames or 0)
    except av.error.FFmpegError as exc:
        raise ImageLoadError(str(path), f"unreadable video: {exc}") from None


def load_video_frames(
    path: str | os.PathLike[str],
    num_frames: int = DEFAULT_NUM_FRAMES,
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[list[LoadedImage], list[int]]:
    """`num_frames` uniformly sampled frames of a frame folder or a video file, and their indices.

    The indices are positions in the folder's natural order or in the decoded stream, so a box
    annotated on frame k can be matched to the frame the model saw.
    """
    source = Path(path)
    if not source.exists():
        raise MissingImageError(str(source), "file not found")
    if source.is_dir():
        files = list_frames(source)
        if not files:
            raise ImageLoadError(str(source), "frame folder holds no images")
        indices = uniform_frame_indices(len(files), num_frames)
        frames = [load_image(files[i], min_pixels=min_pixels, max_pixels=max_pixels) for i in indices]
        return frames, indices

    # Containers may not declare their frame count, or declare it wrongly: then count by decoding.
    total = _video_frame_count(source) or _decode_video(source, set())[0]
    indices = uniform_frame_indices(total, num_frames)
    actual_total, decoded = _decode_video(source, set(indices))
    if actual_total != total:
        indices = uniform_frame_indices(actual_total, num_frames)
        if set(indices) - decoded.keys():
            _, decoded = _decode_video(source, set(indices))
    if not indices:
        raise ImageLoadError(str(source), "video holds no decodable frames")
    frames = [
        prepare_image(decoded[i], path=f"{source}#frame={i}", min_pixels=min_pixels, max_pixels=max_pixels)
        for i in indices
    ]
    return frames, indices
