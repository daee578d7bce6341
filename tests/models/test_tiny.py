"""The tiny checkpoint: the sizes we measured, deterministic, written whole, loadable the standard ways."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from univg.data.prompts import build_messages
from univg.models.tiny import TinySpec, build_tiny_model, parameter_count


def test_directory_is_a_complete_checkpoint(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert {"processor_config.json", "chat_template.jinja", "generation_config.json"} <= names
    assert not tiny_model_dir.with_name(tiny_model_dir.name + ".partial").exists()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    text = config["text_config"]
    assert config["model_type"] == "qwen2_vl"
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (128, 2, 4)
    assert text["num_key_value_heads"] == 2
    assert text["rope_parameters"]["mrope_section"] == [4, 6, 6]
    assert (config["vision_config"]["depth"], config["vision_config"]["embed_dim"]) == (2, 64)


def test_parameter_count_is_about_a_million(tiny_model_dir):
    assert 700_000 < parameter_count(tiny_model_dir) < 1_000_000


def test_same_seed_same_weights_other_seed_other_weights(tiny_model_dir, tmp_path):
    reference = load_file(tiny_model_dir / "model.safetensors")
    same = load_file(build_tiny_model(tmp_path / "same", seed=0) / "model.safetensors")
    other = load_file(build_tiny_model(tmp_path / "other", seed=1) / "model.safetensors")
    assert all(torch.equal(reference[k], same[k]) for k in reference)
    assert not all(torch.equal(reference[k], other[k]) for k in reference)


def test_refuses_to_overwrite_unless_asked(tiny_model_dir, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(ValueError, match="exists; pass 'overwrite' to replace it"):
        build_tiny_model(target)
    assert (target / "keep.txt").exists()
    build_tiny_model(target, overwrite=True)
    assert not (target / "keep.txt").exists()


def test_invalid_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="mrope_section"):
        build_tiny_model(tmp_path / "bad", spec=TinySpec(mrope_section=(8, 8, 8)))
    assert not (tmp_path / "bad").exists()


def test_loads_as_trl_loads_a_model_path_and_runs_forward_and_generate(tiny_model_dir):
    """What TRL's trainers do with a path string: the processor via AutoProcessor, the model (and a
    GRPO reference model when beta > 0) via create_model_from_path."""
    from transformers import AutoProcessor
    from trl.trainer.utils import create_model_from_path

    processor = AutoProcessor.from_pretrained(
        str(tiny_model_dir), padding_side="left", truncation_side="left"
    )
    model = create_model_from_path(str(tiny_model_dir))
    prompt = processor.apply_chat_template(
        build_messages(1, "Find the red square."), add_generation_prompt=True
    )
    assert "<|vision_start|><|image_pad|><|vision_end|>" in prompt
    inputs = processor(text=[prompt], images=[Image.new("RGB", (112, 84), "red")], return_tensors="pt")
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert image_tokens == int(inputs["image_grid_thw"].prod()) // 4
    assert int(inputs["mm_token_type_ids"].sum()) == image_tokens

    logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 5)


def test_qwen25_family_builds_and_loads(tmp_path):
    from transformers import AutoModelForImageTextToText

    path = build_tiny_model(tmp_path / "q25", family="qwen2_5_vl")
    model = AutoModelForImageTextToText.from_pretrained(str(path))
    assert model.config.model_type == "qwen2_5_vl"
    assert model.config.vision_config.out_hidden_size == model.config.text_config.hidden_size
