"""Processing each distinct prompt of a GRPO batch once: TRL's batches hold every prompt N times, and
each processor call (chat template, tokenizer, image processor) would otherwise redo it N times.

`DistinctRowProcessor` stands in for the processor during one generation batch. A call over a batch of
rows processes the distinct rows (same text or messages, same image pixels) and repeats their outputs
to every copy, row fields per row and image fields per image; a call it cannot split exactly (a field
it does not know, videos, positional arguments) goes to the processor as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from itertools import accumulate
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature

ROW_FIELDS = frozenset({"input_ids", "attention_mask", "mm_token_type_ids"})
IMAGE_FIELDS = frozenset({"image_grid_thw"})  # one entry per image
PATCH_FIELDS = frozenset({"pixel_values"})  # t x h x w entries per image (Qwen2-VL's flattened patches)


def image_key(image: Any) -> Hashable:
    """Equal for images with the same pixels (decoded copies of one file are distinct objects)."""
    if isinstance(image, Image.Image):
        digest = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
        return ("pixels", image.mode, image.size, digest)
    if isinstance(image, str):
        return ("path", image)
    return ("object", id(image))  # only the same object counts as the same image


def conversation_key(messages: Any, key_of_image: Callable[[Any], Hashable] = image_key) -> Hashable | None:
    """A conversation's text and images, or None when it holds anything else (videos, tool calls)."""
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return None
    key: list[Hashable] = []
    for message in messages:
        if not isinstance(message, Mapping) or set(message) - {"role", "content"}:
            return None
        content = message.get("content")
        if isinstance(content, str):
            key.append((message.get("role"), "text", content))
            continue
        if not isinstance(content, Sequence):
            return None
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text":
                key.append((message.get("role"), "text", part.get("text")))
            elif kind == "image":
                source = next((part[k] for k in ("image", "url", "path") if part.get(k) is not None), None)
                key.append((message.get("role"), "image", key_of_image(source)))
            else:
                return None
    return tuple(key)


def _distinct(keys: list[Hashable]) -> tuple[list[int], list[int]] | None:
    """(the first row of each distinct key, each row's distinct index), or None when no key repeats."""
    where: dict[Hashable, int] = {}
    firsts, index = [], []
    for row, key in enumerate(keys):
        if key not in where:
            where[key] = len(firsts)
            firsts.append(row)
        index.append(where[key])
    return None if len(firsts) == len(keys) else (firsts, index)


def _take(value: Any, index: list[int]) -> Any:
    if isinstance(value, torch.Tensor):
        return value[torch.tensor(index, dtype=torch.long, device=value.device)]
    if isinstance(value, np.ndarray):
        return value[np.asarray(index, dtype=np.int64)]
    return [value[i] for i in index]


def repeat_rows(
    output: Mapping[str, Any], index: list[int], images_per_row: list[int]
) -> BatchFeature | None:
    """What the processor gives for rows `index` (into the distinct rows of `output`, which had
    `images_per_row` images each), or None when `output` holds a field this cannot repeat."""
    if set(output) - (ROW_FIELDS | IMAGE_FIELDS | PATCH_FIELDS):
        return None
    if "pixel_values" in output and "image_grid_thw" not in output:
        return None
    first_image = [0, *accumulate(images_per_row)]
    images = [first_image[row] + k for row in index for k in range(images_per_row[row])]
    repeated: dict[str, Any] = {}
    for name, value in output.items():
        if name in ROW_FIELDS:
            repeated[name] = _take(value, index)
        elif name in IMAGE_FIELDS:
            repeated[name] = _take(value, images)
    if "pixel_values" in output:
        grid = output["image_grid_thw"]
        patches = [int(np.prod(thw)) for thw in (grid.tolist() if hasattr(grid, "tolist") else grid)]
        first_patch = [0, *accumulate(patches)]
        rows = [p for image in images for p in range(first_patch[image], first_patch[image + 1])]
        repeated["pixel_values"] = _take(output["pixel_values"], rows)
    return BatchFeature(data=repeated)


class DistinctRowProcessor:
    """A processor's stand-in whose batch calls process each distinct row once (see the module)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.splits = True  # False once an output held a field it cannot repeat: then every call goes through
        self.new_batch()

    def new_batch(self) -> None:
        """Forget the images and renderings of the last generation batch (its objects are gone)."""
        self._rendered: dict[Hashable, Any] = {}
        self._image_keys: dict[int, tuple[Any, Hashable]] = {}  # by id: TRL's calls share image objects

    def _image_key(self, image: Any) -> Hashable:
        held = self._image_keys.get(id(image))
        if held is None or held[0] is not image:
            held = self._image_keys[id(image)] = (image, image_key(image))
        return held[1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.processor, name)

    def __call__(self, *args: Any, images: Any = None, text: Any = None, **kwargs: Any) -> Any:
        rows = None
        batched = isinstance(text, list) and isinstance(images, list) and len(images) == len(text)
        if (
            self.splits
            and not args
            and batched
            and all(row is None or isinstance(row, list) for row in images)
        ):
            keys = [
                (line, tuple(self._image_key(image) for image in row or ()))
                for line, row in zip(text, images, strict=True)
            ]
            rows = _distinct(keys)
        if rows is None:
            return self.processor(*args, images=images, text=text, **kwargs)
        firsts, index = rows
        distinct_images = [images[i] for i in firsts]
        output = self.processor(
            images=distinct_images if any(distinct_images) else None,
            text=[text[i] for i in firsts],
            **kwargs,
        )
        repeated = repeat_rows(output, index, [len(row or ()) for row in distinct_images])
        if repeated is None:
            self.splits = False
            return self.processor(images=images, text=text, **kwargs)
        return repeated

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any:
        batched = isinstance(conversation, list) and conversation and isinstance(conversation[0], list)
        if not batched:
            return self._render_once(conversation, kwargs)
        if not (self.splits and kwargs.get("tokenize") and kwargs.get("return_dict")):
            return self.processor.apply_chat_template(conversation, **kwargs)
        keys = [conversation_key(messages, self._image_key) for messages in conversation]
        rows = None if None in keys else _distinct(keys)
        if rows is None:
            return self.processor.apply_chat_template(conversation, **kwargs)
        firsts, index = rows
        output = self.processor.apply_chat_template([conversation[i] for i in firsts], **kwargs)
        images_per_row = [sum(part[1] == "image" for part in keys[i]) for i in firsts]
        repeated = repeat_rows(output, index, images_per_row)
        if repeated is None:
            self.splits = False
            return self.processor.apply_chat_template(conversation, **kwargs)
        return repeated

    def _render_once(self, conversation: Any, kwargs: dict[str, Any]) -> Any:
        """One conversation rendered as text is rendered once per batch (TRL renders each copy)."""
        key = conversation_key(conversation, self._image_key)
        if kwargs.get("tokenize", True) or key is None:
            return self.processor.apply_chat_template(conversation, **kwargs)
        key = (key, repr(sorted(kwargs.items())))
        if key not in self._rendered:
            self._rendered[key] = self.processor.apply_chat_template(conversation, **kwargs)
        return self._rendered[key]
