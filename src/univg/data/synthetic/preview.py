"""Contact sheets: a few samples of one task on one picture, so a person can see what the world makes.

Each row is one sample: its images side by side (scaled up), the answer box drawn in magenta on the
target image, then the question and the teacher's chain underneath.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from univg.data.schema import GroundingSample

SCALE = 2
PAD = 8
LINE = 13
ANSWER_COLOUR = (255, 0, 255)  # magenta: no object wears it
TEXT_COLOUR = (20, 20, 20)


def contact_sheet(rows: Sequence[tuple[GroundingSample, Sequence[Image.Image]]]) -> Image.Image:
    """One picture showing every (sample, images) row."""
    font = ImageFont.load_default()
    tile = max(image.width for _, images in rows for image in images) * SCALE
    columns = max(len(images) for _, images in rows)
    width = PAD + columns * (tile + PAD)
    wrap = max(40, width // 6)
    blocks = []
    for sample, images in rows:
        text = textwrap.wrap(sample.question, wrap) + textwrap.wrap(f"think: {sample.cot or ''}", wrap)
        blocks.append((sample, images, text))
    height = PAD + sum(LINE + tile + PAD + LINE * len(text) + PAD for _, _, text in blocks)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    top = PAD
    for sample, images, text in blocks:
        for index, image in enumerate(images):
            left = PAD + index * (tile + PAD)
            label = f"image {index + 1}" + (" (target)" if index == sample.target_image else "")
            draw.text((left, top), label, fill=TEXT_COLOUR, font=font)
            scaled = image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)
            sheet.paste(scaled, (left, top + LINE))
            if index == sample.target_image:
                x1, y1, x2, y2 = sample.box
                w, h = scaled.size
                box = (left + x1 * w, top + LINE + y1 * h, left + x2 * w - 1, top + LINE + y2 * h - 1)
                draw.rectangle(box, outline=ANSWER_COLOUR, width=2)
        y = top + LINE + tile + PAD
        for line in text:
            draw.text((PAD, y), line, fill=TEXT_COLOUR, font=font)
            y += LINE
        top = y + PAD
    return sheet
