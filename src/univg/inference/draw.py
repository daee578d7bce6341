"""Drawing a predicted box on the image it belongs to, for people to check answers at a glance."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

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


def draw_prediction(prediction: Prediction, out: str | os.PathLike[str]) -> Path:
    """Draw a prediction's box on its target image (read again from its file) and save it to `out`.

    Raises ValueError when there is nothing to draw (no box, or no known target image) and
    `ImageLoadError` when the target cannot be read again (e.g. a frame decoded from a video file).
    """
    if prediction.box_pixels is None or prediction.target_image is None:
        raise ValueError("the answer holds no box in a known image; nothing to draw")
    source = prediction.images[prediction.target_image]
    try:
        with Image.open(source) as opened:
            canvas = draw_box(opened, prediction.box_pixels)
    except OSError as exc:
        raise ImageLoadError(source, f"cannot be read again for drawing: {exc}") from None
    if canvas.size != tuple(prediction.image_sizes[prediction.target_image]):
        raise ValueError(f"{source}: the file changed since the prediction (size {canvas.size})")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
