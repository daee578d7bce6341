"""Drawing a predicted box on the image it belongs to, for people to check answers at a glance."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from univg.core.errors import UsageError
from univg.data.files import atomic_write
from univg.data.images import ImageLoadError
from univg.inference.predictor import Prediction


def draw_box(
    image: Image.Image, box_pixels: Sequence[float], *, label: str | None = None, color: str = "red"
) -> Image.Image:
    """A copy of `image`, upright (EXIF applied, as the predictor sees it), with the box drawn on it."""
    canvas = ImageOps.exif_transpose(image).convert("RGB")
    width = max(2, round(min(canvas.size) / 150))
    draw = ImageDraw.Draw(canvas)
    ax, ay, bx, by = (float(v) for v in box_pixels)
    # a model may write the corners in any order: draw what it wrote rather than fail on it
    x1, y1, x2, y2 = min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)
    draw.rectangle((x1, y1, x2, y2), outline=color, width=width)
    if label:
        draw.text((x1 + width, max(0.0, y1 - 12 - width)), label, fill=color)
    return canvas


class NothingToDrawError(ValueError):
    """The answer holds no box in a known image."""


def draw_prediction(prediction: Prediction, out: str | os.PathLike[str]) -> Path:
    """Draw a prediction's box on its target image (read again from its file) and save it to `out`
    (atomically, in the format its extension names).

    Raises `NothingToDrawError` when there is nothing to draw (no box, or no known target image),
    `ImageLoadError` when the target cannot be read again (e.g. a frame decoded from a video file)
    and `UsageError` for an extension that names no image format.
    """
    if prediction.box_pixels is None or prediction.target_image is None:
        raise NothingToDrawError("the answer holds no box in a known image; nothing to draw")
    source = prediction.images[prediction.target_image]
    try:
        with Image.open(source) as opened:
            canvas = draw_box(opened, prediction.box_pixels)
    except OSError as exc:
        raise ImageLoadError(source, f"cannot be read again for drawing: {exc}") from None
    if canvas.size != tuple(prediction.image_sizes[prediction.target_image]):
        raise ImageLoadError(source, f"the file changed since the prediction (size {canvas.size})")
    path = Path(out)
    image_format = drawing_format(path)
    with atomic_write(path, binary=True) as handle:
        canvas.save(handle, format=image_format)
    return path


def drawing_format(path: str | os.PathLike[str]) -> str:
    """The image format a drawing's file name asks for (from its extension); `UsageError` if none."""
    suffix = Path(path).suffix.lower()
    image_format = Image.registered_extensions().get(suffix)
    if image_format is None or image_format not in Image.SAVE:
        raise UsageError(
            f"{suffix or 'no extension'} names no image format", path=path, hint="use .png or .jpg"
        )
    return image_format
