"""Checkpoint folders are checked before loading, and known by what they hold (not where they are)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from univg.cli.main import main
from univg.models.checkpoint import ModelLoadError, check_checkpoint, checkpoint_sha256
from univg.models.loading import load_model_and_processor


def _truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def _shard_index(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")


# (what is done to a copy of a good checkpoint, what the error must say)
DAMAGE: list[tuple[str, Callable[[Path], None], str]] = [
    ("no weights", lambda d: (d / "model.safetensors").unlink(), "holds no model weights"),
    ("truncated weights", lambda d: _truncate(d / "model.safetensors", 100_000), "truncated: 100000 bytes"),
    (
        "weights cut in their header",
        lambda d: _truncate(d / "model.safetensors", 20),
        "truncated in its header",
    ),
    ("empty weights", lambda d: _truncate(d / "model.safetensors", 0), "truncated (0 bytes"),
    (
        "weights with bytes after them",
        lambda d: _append(d / "model.safetensors", b"x"),
        "longer than its header",
    ),
    (
        "a Git LFS pointer",
        lambda d: (d / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n"),
        "git lfs pull",
    ),
    (
        "a missing shard",
        _shard_index,
        "model-00002-of-00002.safetensors named by model.safetensors.index.json",
    ),
    ("no tokenizer", lambda d: (d / "tokenizer.json").unlink(), "holds no tokenizer"),
    (
        "no image processor",
        lambda d: (d / "processor_config.json").unlink(),
        "holds no image processor config",
    ),
    (
        "config not JSON",
        lambda d: (d / "config.json").write_text("{", encoding="utf-8"),
        "config.json: unreadable",
    ),
    (
        "config not an object",
        lambda d: (d / "config.json").write_text("[]"),
        "config.json: expected a JSON object",
    ),
    (
        "config not UTF-8",
        lambda d: (d / "config.json").write_bytes(b'{"model_type": "\xff"}'),
        "config.json: unreadable",
    ),
]


@pytest.mark.parametrize(("name", "damage", "message"), DAMAGE, ids=[row[0] for row in DAMAGE])
def test_a_damaged_checkpoint_is_named_before_anything_loads(tiny_model_dir, tmp_path, name, damage, message):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    damage(folder)
    with pytest.raises(ModelLoadError) as caught:
        check_checkpoint(folder)
    assert message in str(caught.value)
    with pytest.raises(ModelLoadError, match=re.escape(message)):
        load_model_and_processor(folder)


def test_the_command_line_says_it_in_one_line_with_exit_status_1(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    _truncate(folder / "model.safetensors", 100_000)
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    assert main(["predict", "--model", str(folder), "--image", str(image), "--question", "the cat"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.safetensors: truncated: 100000 bytes" in err[0]
    assert "Traceback" not in err[0]


def test_identity_is_the_same_for_a_copy_and_changes_with_any_weight(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "trainer_log.jsonl").write_text("{}\n")  # what does not make the model answer is not hashed
    assert checkpoint_sha256(copy) == checkpoint_sha256(tiny_model_dir)

    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(weights))
    changed = checkpoint_sha256(copy)
    assert changed != checkpoint_sha256(tiny_model_dir)

    (copy / "chat_template.jinja").write_text("{{ messages }}")
    assert checkpoint_sha256(copy) not in (changed, checkpoint_sha256(tiny_model_dir))


def test_an_adapter_folder_that_is_not_one_names_the_flag(tiny_model_dir, tmp_path, capsys):
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    argv = ["predict", "--model", str(tiny_model_dir), "--adapter", str(tmp_path), "--image", str(image)]
    assert main([*argv, "--question", "q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"univg predict: '{tmp_path}' is not a LoRA adapter directory: it holds no adapter_config.json; "
        "check --adapter"
    ]
