"""Grounding samples as a Hugging Face `datasets.Dataset`, in the layout TRL's trainers read.

Columns: ``prompt`` (the user turn: image placeholders in order, then the text), ``completion`` (the
assistant turn, for SFT), ``images`` (a list of `datasets.Image`: paths on disk, decoded lazily to
upright RGB PIL images, which TRL drops into the placeholders), and the columns reward functions and
evaluation read: ``solution`` (canonical 0..1 box), ``target_image``, ``target_images`` (every image
the box is right in), ``task``, ``id``, ``source``. The processor resizes the images itself, with the
same `smart_resize` as `univg.data.images`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import datasets

from univg.core.boxes import CoordSystem
from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.data.prompts import PromptStyle, sample_messages
from univg.data.schema import GroundingSample, read_jsonl, resolve_image

_TEXT_PART = {"type": datasets.Value("string"), "text": datasets.Value("string")}
_MESSAGES = [{"role": datasets.Value("string"), "content": [_TEXT_PART]}]


def features(with_answer: bool = False, decode_images: bool = True) -> datasets.Features:
    """The dataset schema (fixed, so empty and streamed datasets type-check the same way)."""
    columns: dict[str, Any] = {
        "id": datasets.Value("string"),
        "task": datasets.Value("string"),
        "source": datasets.Value("string"),
        "images": [datasets.Image(mode="RGB", decode=decode_images)],
        "prompt": _MESSAGES,
        "solution": [datasets.Value("float64")],
        "target_image": datasets.Value("int64"),
        "target_images": [datasets.Value("int64")],
    }
    if with_answer:
        columns["completion"] = _MESSAGES
    return datasets.Features(columns)


def sample_row(
    sample: GroundingSample,
    *,
    with_answer: bool = False,
    style: PromptStyle | str = PromptStyle.UNIVG,
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    image_root: str | os.PathLike[str] | None = None,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """One dataset row for a sample (see the module docstring for the columns)."""
    messages = sample_messages(
        sample,
        style=style,
        coords=coords,
        with_answer=with_answer,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
    )
    row: dict[str, Any] = {
        "id": sample.id,
        "task": sample.task,
        "source": sample.source,
        "images": [str(resolve_image(path, image_root)) for path in sample.images],
        "prompt": messages[:1],
        "solution": [float(v) for v in sample.box],
        "target_image": sample.target_image,
        "target_images": sample.accepted_images,
    }
    if with_answer:
        row["completion"] = messages[1:]
    return row


def to_hf_dataset(
    samples: Iterable[GroundingSample],
    *,
    with_answer: bool = False,
    style: PromptStyle | str = PromptStyle.UNIVG,
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    image_root: str | os.PathLike[str] | None = None,
    decode_images: bool = True,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> datasets.Dataset:
    """An in-memory dataset of samples: ``with_answer`` for SFT (adds ``completion``), else GRPO."""
    rows = [
        sample_row(
            sample,
            with_answer=with_answer,
            style=style,
            coords=coords,
            image_root=image_root,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
        )
        for sample in samples
    ]
    return datasets.Dataset.from_list(rows, features=features(with_answer, decode_images))


def _jsonl_rows(path: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for sample in read_jsonl(path):
        yield sample_row(sample, **kwargs)


def hf_dataset_from_jsonl(
    path: str | os.PathLike[str],
    *,
    with_answer: bool = False,
    style: PromptStyle | str = PromptStyle.UNIVG,
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    image_root: str | os.PathLike[str] | None = None,
    decode_images: bool = True,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cache_dir: str | os.PathLike[str] | None = None,
) -> datasets.Dataset:
    """A dataset built from a canonical JSON Lines file, streamed to an Arrow cache (flat memory)."""
    return datasets.Dataset.from_generator(
        _jsonl_rows,
        features=features(with_answer, decode_images),
        gen_kwargs={
            "path": str(path),
            "with_answer": with_answer,
            "style": PromptStyle(style).value,
            "coords": CoordSystem.parse(coords).value,
            "image_root": None if image_root is None else str(image_root),
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
        },
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
