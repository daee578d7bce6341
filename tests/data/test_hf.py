"""The Hugging Face dataset adapter: the columns TRL's trainers read, images decoded lazily."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from trl.data_utils import prepare_multimodal_messages

from univg.data.hf import RowOptions, hf_dataset_from_jsonl, to_hf_dataset
from univg.data.prompts import COT_SUFFIX
from univg.data.schema import GroundingSample, write_jsonl


@pytest.fixture
def samples(tmp_path: Path, make_image: Callable[..., Path]) -> list[GroundingSample]:
    make_image(tmp_path / "a.jpg", (300, 200))
    make_image(tmp_path / "b.png", (100, 100))
    return [
        GroundingSample("0", "common_object", "mig-bench", ["a.jpg", "b.png"], "Find it in the 2th image.", 1,
                        (0.1, 0.2, 0.3, 0.4), extra={"target_images": [0, 1]}),
        GroundingSample("1", "refcoco", "refcoco", ["a.jpg"], "the dog", 0, (0.5, 0.5, 1.0, 1.0), cot=None),
    ]  # fmt: skip


def test_grpo_columns(samples: list[GroundingSample], tmp_path: Path) -> None:
    dataset = to_hf_dataset(samples, RowOptions(image_root=str(tmp_path)))
    assert set(dataset.column_names) == {
        "id", "task", "source", "images", "prompt", "solution", "target_image", "target_images",
    }  # fmt: skip
    row = dataset[0]
    assert [image.size for image in row["images"]] == [(300, 200), (100, 100)]
    assert all(isinstance(image, Image.Image) and image.mode == "RGB" for image in row["images"])
    assert row["prompt"][0]["content"][-1]["text"] == "Find it in the 2th image." + COT_SUFFIX
    assert row["solution"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert (row["target_image"], row["target_images"]) == (1, [0, 1])
    assert dataset[1]["target_images"] == [0]


def test_trl_fills_the_image_placeholders(samples: list[GroundingSample], tmp_path: Path) -> None:
    row = to_hf_dataset(samples, RowOptions(image_root=str(tmp_path)))[0]
    filled = prepare_multimodal_messages(row["prompt"], images=row["images"])
    parts = filled[0]["content"]
    assert [part["image"].size for part in parts if part["type"] == "image"] == [(300, 200), (100, 100)]


def test_sft_completion(samples: list[GroundingSample], tmp_path: Path) -> None:
    dataset = to_hf_dataset(
        samples, RowOptions(with_answer=True, image_root=str(tmp_path)), decode_images=False
    )
    assert (
        dataset[0]["completion"][0]["content"][0]["text"]
        == "<think></think><answer>(100, 200), (300, 400)</answer>"
    )
    assert dataset[1]["completion"][0]["content"][0]["text"] == "<answer>(500, 500), (1000, 1000)</answer>"
    assert dataset[0]["images"][0]["path"] == str(tmp_path / "a.jpg")


def test_from_jsonl_streams_into_an_arrow_cache(samples: list[GroundingSample], tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    write_jsonl(samples, path)
    dataset = hf_dataset_from_jsonl(path, RowOptions(image_root=str(tmp_path)), cache_dir=tmp_path / "cache")
    assert dataset["id"] == ["0", "1"]
    assert dataset[1]["images"][0].size == (300, 200)
    assert dataset.features == to_hf_dataset(samples, RowOptions(image_root=str(tmp_path))).features
