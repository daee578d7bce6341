"""The processor's fast paths give what the stock transformers code gives, on real chat batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from univg.models.processor import BatchedQwen2VLImageProcessor, UnivgQwenVLProcessor, load_processor


def _images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def _conversation(images, question, answer):
    return {
        "images": images,
        "messages": [
            {
                "role": "user",
                "content": [*({"type": "image"} for _ in images), {"type": "text", "text": question}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


@pytest.mark.parametrize(
    "sizes",
    [
        [(112, 112)] * 5,  # already at their resized size: the batched path
        [(112, 112), (56, 84)],  # mixed sizes: the stock path
        [(100, 130), (100, 130)],  # need a resize: the stock path
        [(224, 112)],
    ],
)
def test_batched_image_processing_equals_the_stock_processor(sizes):
    kwargs = {"min_pixels": 3136, "max_pixels": 12544 * 4}
    ours = BatchedQwen2VLImageProcessor(**kwargs)(_images(sizes), return_tensors="pt")
    stock = Qwen2VLImageProcessorPil(**kwargs)(_images(sizes), return_tensors="pt")
    torch.testing.assert_close(ours["image_grid_thw"], stock["image_grid_thw"], rtol=0, atol=0)
    torch.testing.assert_close(ours["pixel_values"], stock["pixel_values"], rtol=1e-6, atol=1e-6)


def test_saved_processor_keeps_the_stock_image_processor_name(tiny_model_dir):
    processor = load_processor(str(tiny_model_dir))
    assert isinstance(processor.image_processor, BatchedQwen2VLImageProcessor)
    assert processor.image_processor.to_dict()["image_processor_type"] == "Qwen2VLImageProcessor"


def test_sft_collation_equals_the_stock_code_path(tiny_model_dir, monkeypatch):
    """TRL's collator over multi-turn, multi-image chats: input ids, labels (assistant-only) and pixels."""
    processor = load_processor(str(tiny_model_dir), max_pixels=12544)
    examples = [
        _conversation(
            _images([(112, 112)] * 3, seed=1),
            "Find the red circle in image 2.",
            "<think>a</think><answer>(1, 2), (3, 4)</answer>",
        ),
        _conversation(_images([(112, 112)], seed=2), "Where is it?", "(10, 20), (30, 40)"),
    ]
    examples[1]["messages"] += [
        {"role": "user", "content": [{"type": "text", "text": "And now?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "(50, 60), (70, 80)"}]},
    ]

    def collate():
        collator = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)
        return collator([{k: (list(v) if k == "images" else v) for k, v in e.items()} for e in examples])

    from trl.chat_template_utils import get_training_chat_template

    processor.chat_template = get_training_chat_template(processor)
    ours = collate()
    monkeypatch.setattr(
        UnivgQwenVLProcessor,
        "_adjust_assistant_masks_indices",
        Qwen2VLProcessor._adjust_assistant_masks_indices,
    )
    monkeypatch.setattr(BatchedQwen2VLImageProcessor, "_preprocess", Qwen2VLImageProcessorPil._preprocess)
    stock = collate()
    assert ours.keys() == stock.keys()
    assert (ours["labels"] != -100).sum() > 20  # the answers of three assistant turns
    for key in ours:
        if key == "pixel_values":
            torch.testing.assert_close(ours[key], stock[key], rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(ours[key], stock[key]), key
