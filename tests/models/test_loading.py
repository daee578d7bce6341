"""Loading: one path for every checkpoint, the family's coordinates, adapters, and clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from univg.cli.main import main
from univg.core.boxes import CoordSystem
from univg.models.loading import ModelLoadError, UnsupportedModelError, load_model_and_processor
from univg.models.processor import UnivgQwenVLProcessor, load_processor
from univg.models.tiny import build_tiny_model


@pytest.mark.parametrize("vocab", ["trained", "qwen"])
def test_loads_what_univg_model_tiny_writes(tmp_path, vocab, capsys):
    out = tmp_path / f"tiny-{vocab}"
    assert main(["model", "tiny", "--out", str(out), "--vocab", vocab, "--seed", "3"]) == 0
    assert str(out) in capsys.readouterr().out

    loaded = load_model_and_processor(out, max_pixels=112 * 112)
    assert type(loaded.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert isinstance(loaded.processor, UnivgQwenVLProcessor)
    assert loaded.coords is CoordSystem.QWEN2VL
    assert not loaded.model.training
    assert loaded.processor.image_processor.size.longest_edge == 112 * 112
    tokenizer = loaded.processor.tokenizer
    assert len(tokenizer) == loaded.model.config.text_config.vocab_size
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == loaded.model.config.image_token_id


def test_cli_refuses_to_overwrite(tiny_model_dir, capsys):
    assert main(["model", "tiny", "--out", str(tiny_model_dir)]) == 2
    assert (
        capsys.readouterr().err
        == f"univg model tiny: {tiny_model_dir}: exists; pass --overwrite to replace it\n"
    )


def test_tiny_refuses_links_even_with_overwrite_and_a_full_disk_leaves_nothing(tmp_path, full_disk, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert main(["model", "tiny", "--out", str(tmp_path / "link"), "--overwrite"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert not any((tmp_path / "real").iterdir())

    before = {p.name for p in full_disk.iterdir()}
    assert main(["model", "tiny", "--out", str(full_disk / "tiny")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the disk is full" in err[0]
    assert {p.name for p in full_disk.iterdir()} == before  # no tiny, no .partial, no temporary


def test_qwen25_checkpoints_write_pixel_boxes(tmp_path):
    loaded = load_model_and_processor(build_tiny_model(tmp_path / "q25", family="qwen2_5_vl"))
    assert loaded.coords is CoordSystem.PIXELS


def test_dtype_is_applied(tiny_model_dir):
    assert load_model_and_processor(tiny_model_dir, dtype="bfloat16").model.dtype == torch.bfloat16
    assert load_model_and_processor(tiny_model_dir, dtype=torch.float32).model.dtype == torch.float32
    with pytest.raises(ValueError, match="'dtype' 'float8' is not one of"):
        load_model_and_processor(tiny_model_dir, dtype="float8")


def test_attention_implementation_is_applied(tiny_model_dir):
    model = load_model_and_processor(tiny_model_dir, attn_implementation="eager").model
    assert model.config._attn_implementation == "eager"


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model_and_processor(tmp_path / "no-such-model")


def test_directory_without_a_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model_and_processor(tmp_path)


def test_unreachable_hub_id_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="neither a local checkpoint directory nor loadable"):
        load_model_and_processor("univg-tests/does-not-exist", local_files_only=True)


@pytest.mark.parametrize("model_type", ["llama", "no_such_architecture"])
def test_unsupported_architecture_is_a_clear_error(tmp_path, model_type):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": ["X"]}))
    with pytest.raises(
        UnsupportedModelError, match=rf"is a {model_type} checkpoint; univg runs only qwen2_vl"
    ):
        load_model_and_processor(tmp_path)


@pytest.fixture(scope="module")
def lora_adapter(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter on the tiny model with non-zero weights, so it changes the outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2VLForConditionalGeneration

    base = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    path = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(path)
    return path


def _logits(model, input_ids):
    with torch.no_grad():
        return model(input_ids=input_ids).logits


def test_lora_adapter_changes_the_model_merged_or_not(tiny_model_dir, lora_adapter):
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    base = _logits(load_model_and_processor(tiny_model_dir).model, ids)
    merged = load_model_and_processor(tiny_model_dir, adapter=lora_adapter)
    unmerged = load_model_and_processor(tiny_model_dir, adapter=lora_adapter, merge_adapter=False)
    assert type(merged.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert type(unmerged.model).__name__ == "PeftModel"
    assert not torch.allclose(base, _logits(merged.model, ids))
    torch.testing.assert_close(_logits(merged.model, ids), _logits(unmerged.model, ids), rtol=1e-4, atol=1e-4)


def test_adapter_directory_alone_loads_its_base(tiny_model_dir, lora_adapter):
    ids = torch.tensor([[1, 2, 3]])
    direct = load_model_and_processor(lora_adapter)
    explicit = load_model_and_processor(tiny_model_dir, adapter=lora_adapter)
    assert direct.coords is CoordSystem.QWEN2VL
    torch.testing.assert_close(_logits(direct.model, ids), _logits(explicit.model, ids))


def test_adapter_that_is_not_an_adapter_is_a_clear_error(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="not a LoRA adapter"):
        load_model_and_processor(tiny_model_dir, adapter=tiny_model_dir)


def test_a_checkpoint_laid_out_like_the_published_ones_loads(tiny_model_dir, tmp_path):
    """Published Qwen2-VL repos keep the image settings in preprocessor_config.json (old-style
    min_pixels / max_pixels keys), the template in chat_template.json, and name the stock processor."""
    target = shutil.copytree(tiny_model_dir, tmp_path / "published")
    template = (target / "chat_template.jinja").read_text()
    (target / "chat_template.jinja").unlink()
    (target / "processor_config.json").unlink()
    (target / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    preprocessor = {
        "min_pixels": 3136,
        "max_pixels": 12845056,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor",
    }
    (target / "preprocessor_config.json").write_text(json.dumps(preprocessor))

    loaded = load_model_and_processor(target, max_pixels=112 * 112)
    assert loaded.processor.chat_template == template
    assert loaded.processor.image_processor.size.longest_edge == 112 * 112
    assert loaded.processor.image_processor.size.shortest_edge == 3136


def test_processor_saved_with_the_adapter_wins(tiny_model_dir, lora_adapter, tmp_path):
    adapter = shutil.copytree(lora_adapter, tmp_path / "adapter")
    processor = load_processor(str(tiny_model_dir))
    processor.chat_template = processor.chat_template.replace("You are a helpful assistant.", "You ground.")
    processor.save_pretrained(adapter)
    loaded = load_model_and_processor(adapter)
    assert "You ground." in loaded.processor.chat_template
