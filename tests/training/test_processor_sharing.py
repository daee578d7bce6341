"""`DistinctRowProcessor`: what the processor gives for every row, computed from the distinct rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from univg.training.processor_sharing import DistinctRowProcessor, conversation_key, repeat_rows

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"


def picture(seed: int, size: tuple[int, int] = (112, 112)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return AutoProcessor.from_pretrained(tiny_model_dir)


def assert_same(ours: Any, theirs: Any) -> None:
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        if isinstance(value, torch.Tensor):
            assert ours[name].dtype == value.dtype and torch.equal(ours[name], value), name
        elif isinstance(value, np.ndarray):
            assert ours[name].dtype == value.dtype and np.array_equal(ours[name], value), name
        else:
            assert ours[name] == value, name


class ImageCounter:
    """The image processor, counting the images it is given."""

    def __init__(self, processor: Any) -> None:
        self.inner, self.images = processor.image_processor, 0

    def __call__(self, images: Any = None, **kwargs: Any) -> Any:
        self.images += sum(len(row) if isinstance(row, list) else 1 for row in images or [])
        return self.inner(images=images, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# rows as (text, images): copies are fresh objects with the same pixels, as decoded dataset rows are
ROWS = {
    "interleaved groups": [("a " + IMAGE, [0]), ("b " + IMAGE + IMAGE, [1, 2])] * 4,
    "one group": [("where " + IMAGE + IMAGE, [3, 4])] * 8,
    "text-only and image rows": [("plain", []), ("c " + IMAGE, [5]), ("plain", []), ("c " + IMAGE, [5])],
    "same text, other pixels": [("d " + IMAGE, [6]), ("d " + IMAGE, [7]), ("d " + IMAGE, [6])],
    "image sizes differ": [("e " + IMAGE, [(8, (112, 84))]), ("e " + IMAGE, [(8, (112, 84))])],
    "nothing repeats": [("f " + IMAGE, [9]), ("g " + IMAGE, [10])],
}


def images_of(spec: list[Any]) -> list[Image.Image]:
    return [picture(*item) if isinstance(item, tuple) else picture(item) for item in spec]


@pytest.mark.parametrize("rows", list(ROWS.values()), ids=list(ROWS))
def test_a_batch_call_gives_the_processors_outputs(processor, rows):
    text = [line for line, _ in rows]
    theirs = processor(
        images=[images_of(spec) for _, spec in rows], text=text, padding=True, return_tensors="pt"
    )
    ours = DistinctRowProcessor(processor)(
        images=[images_of(spec) for _, spec in rows], text=text, padding=True, return_tensors="pt"
    )
    assert_same(ours, theirs)


def conversations(rows: list[tuple[str, list[Any]]]) -> list[list[dict[str, Any]]]:
    return [
        [
            {
                "role": "user",
                "content": [
                    *({"type": "image", "image": image} for image in images_of(spec)),
                    {"type": "text", "text": line.replace(IMAGE, "")},
                ],
            }
        ]
        for line, spec in rows
    ]


@pytest.mark.parametrize("rows", list(ROWS.values()), ids=list(ROWS))
def test_a_tokenized_chat_batch_gives_the_processors_outputs(processor, rows):
    settings = {"add_generation_prompt": True, "tokenize": True, "return_dict": True}
    theirs = processor.apply_chat_template(conversations(rows), **settings)
    ours = DistinctRowProcessor(processor).apply_chat_template(conversations(rows), **settings)
    assert_same(ours, theirs)


def test_each_distinct_image_is_processed_once(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    counter = ImageCounter(processor)
    processor.image_processor = counter
    rows = ROWS["interleaved groups"]  # 8 rows, 12 images, 3 distinct
    shared = DistinctRowProcessor(processor)
    shared(images=[images_of(spec) for _, spec in rows], text=[line for line, _ in rows], padding=True)
    assert counter.images == 3
    shared.apply_chat_template(conversations(rows), tokenize=True, return_dict=True)
    assert counter.images == 6


def test_rendering_a_conversation_as_text_is_done_once_per_batch(processor, monkeypatch):
    rendered = []
    real = processor.apply_chat_template
    monkeypatch.setattr(processor, "apply_chat_template", lambda *a, **k: rendered.append(1) or real(*a, **k))
    shared = DistinctRowProcessor(processor)
    texts = [
        shared.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        for messages in conversations(ROWS["interleaved groups"])
    ]
    expected = [
        real(m, tokenize=False, add_generation_prompt=True) for m in conversations(ROWS["interleaved groups"])
    ]
    assert texts == expected and len(rendered) == 2


def test_what_it_cannot_split_goes_to_the_processor_whole():
    # an output field it does not know (say, a model's per-image sizes) cannot be repeated
    assert repeat_rows({"input_ids": [[1], [2]], "image_sizes": [[4, 4]]}, [0, 1, 0], [1, 0]) is None
    assert repeat_rows({"pixel_values": torch.zeros(4, 2)}, [0, 0], [1]) is None  # no grid to split it by
    video = [{"role": "user", "content": [{"type": "video", "video": "clip.mp4"}]}]
    assert conversation_key(video) is None
    assert conversation_key([{"role": "assistant", "content": "", "tool_calls": []}]) is None


def test_a_processor_whose_outputs_it_cannot_repeat_is_called_whole_from_then_on(processor):
    calls = []

    def with_sizes(*args, **kwargs):  # a processor with a field of its own (as LLaVA-NeXT's image_sizes)
        calls.append(len(kwargs["text"]))
        return {**processor(*args, **kwargs), "image_sizes": [[112, 112]]}

    shared = DistinctRowProcessor(with_sizes)
    rows = ROWS["interleaved groups"]
    for _ in range(2):
        shared.new_batch()
        out = shared(
            images=[images_of(spec) for _, spec in rows], text=[line for line, _ in rows], padding=True
        )
        assert len(out["input_ids"]) == len(rows)
    assert calls == [2, 8, 8]  # the distinct rows once, then the whole batch: never both again
