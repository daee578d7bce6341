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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RowOptions:
    """How samples become rows: with the answer turn (SFT) or without (GRPO), in which prompt style
    and box coordinates, under which pixel budget (pixel boxes refer to the resized target), with
    image paths joined to which root."""

    with_answer: bool = False
    style: str = PromptStyle.UNIVG.value
    coords: str = CoordSystem.QWEN2VL.value
    image_root: str | None = None
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS


def sample_row(sample: GroundingSample, options: RowOptions = RowOptions()) -> dict[str, Any]:
    """One dataset row for a sample (see the module docstring for the columns)."""
    messages = sample_messages(
        sample,
        style=options.style,
        coords=options.coords,
        with_answer=options.with_answer,
        min_pixels=options.min_pixels,
        max_pixels=options.max_pixels,
    )
    row: dict[str, Any] = {
        "id": sample.id,
        "task": sample.task,
        "source": sample.source,
        "images": [str(resolve_image(path, options.image_root)) for path in sample.images],
        "prompt": messages[:1],
        "solution": [float(v) for v in sample.box],
        "target_image": sample.target_image,
        "target_images": sample.accepted_images,
    }
    if options.with_answer:
        row["completion"] = messages[1:]
    return row


def to_hf_dataset(
    samples: Iterable[GroundingSample], options: RowOptions = RowOptions(), *, decode_images: bool = True
) -> datasets.Dataset:
    """An in-memory dataset of samples: ``with_answer`` for SFT (adds ``completion``), else GRPO."""
    rows = [sample_row(sample, options) for sample in samples]
    return datasets.Dataset.from_list(rows, features=features(options.with_answer, decode_images))


def _jsonl_rows(path: str, options: RowOptions) -> Iterator[dict[str, Any]]:
    for sample in read_jsonl(path):
        yield sample_row(sample, options)


def hf_dataset_from_jsonl(
    path: str | os.PathLike[str],
    options: RowOptions = RowOptions(),
    *,
    decode_images: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> datasets.Dataset:
    """A dataset built from a canonical JSON Lines file, streamed to an Arrow cache (flat memory)."""
    return datasets.Dataset.from_generator(
        _jsonl_rows,
        features=features(options.with_answer, decode_images),
        gen_kwargs={"path": str(path), "options": options},
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
