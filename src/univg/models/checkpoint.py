"""What a local checkpoint folder holds: its kind, whether it is complete, and what model it is.

Checked before anything loads, so a folder without weights, with a truncated or never-downloaded
(Git LFS pointer) safetensors file, or without its tokenizer is named with what is missing instead of
failing deep inside transformers (or, without a tokenizer, loading and then answering nonsense).

A model's identity is a hash of what makes it answer as it does (config, weights, tokenizer,
processor and chat template files), not its path: `univg eval run` resumes only with the model that
made the answers already written, even if another checkpoint was put at the same path, and accepts
the same model copied elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from univg.core.errors import UnivgError

CONFIG_FILE = "config.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
# What makes a checkpoint answer as it does; logs, training state and cards are not part of it.
IDENTITY_FILES = (
    CONFIG_FILE,
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    ADAPTER_CONFIG_FILE,
    *PROCESSOR_FILES,
    *WEIGHT_INDEXES,
)
_HASH_CHUNK = 1 << 22
_LFS_POINTER = b"version https://git-lfs"
_MAX_HEADER = 100 << 20  # a safetensors header (JSON) is kilobytes to a few megabytes


class ModelLoadError(UnivgError, RuntimeError):
    """A model that cannot be loaded: the message says which path and why."""


def local_kind(path: Path) -> str:
    """'model' or 'adapter' for a local directory; a clear error for anything else."""
    if not path.exists():
        raise ModelLoadError(f"model path {str(path)!r} does not exist")
    if not path.is_dir():
        raise ModelLoadError(f"model path {str(path)!r} is a file; expected a checkpoint directory")
    if (path / CONFIG_FILE).is_file():
        return "model"
    if (path / ADAPTER_CONFIG_FILE).is_file():
        return "adapter"
    raise ModelLoadError(
        f"{str(path)!r} is not a model directory: it holds no config.json (expected a Hugging Face "
        "checkpoint, e.g. one written by `univg model tiny`, or a LoRA adapter with adapter_config.json)"
    )


def read_json_file(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON file as an object; `ModelLoadError` naming it when it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: unreadable ({exc})") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return value


def weight_files(folder: Path, names: Iterable[str] = WEIGHT_FILES) -> list[Path]:
    """The weight files of a checkpoint: one file, or the shards its index names."""
    for name in names:
        if (folder / name).is_file():
            return [folder / name]
    for index_name in WEIGHT_INDEXES:
        index = folder / index_name
        if index.is_file():
            mapping = read_json_file(index).get("weight_map")
            if not isinstance(mapping, dict) or not mapping:
                raise ModelLoadError(f"{index}: holds no weight_map")
            shards = sorted({folder / str(shard) for shard in mapping.values()})
            missing = [shard.name for shard in shards if not shard.is_file()]
            if missing:
                raise ModelLoadError(
                    f"{folder}: the shard(s) {', '.join(missing[:3])} named by {index_name} are missing "
                    "(an incomplete download or copy?)"
                )
            return shards
    return []


def check_safetensors(path: Path) -> None:
    """`ModelLoadError` unless `path` is a whole safetensors file (its header covers the file exactly)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        start = handle.read(len(_LFS_POINTER))
        if start == _LFS_POINTER:
            raise ModelLoadError(
                f"{path}: a Git LFS pointer, not the weights (cloned without git-lfs? run `git lfs pull`)"
            )
        if len(start) < 8:
            raise ModelLoadError(f"{path}: truncated ({size} bytes, not even a safetensors header)")
        (header_size,) = struct.unpack("<Q", start[:8])
        handle.seek(8)
        if header_size > min(size - 8, _MAX_HEADER):
            raise ModelLoadError(f"{path}: not a safetensors file, or truncated in its header ({size} bytes)")
        try:
            header = json.loads(handle.read(header_size))
            ends = [int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise ModelLoadError(f"{path}: not a safetensors file (its header is not valid)") from None
    needed = 8 + header_size + max(ends, default=0)
    if needed != size:
        state = "truncated" if needed > size else "longer than its header says"
        raise ModelLoadError(
            f"{path}: {state}: {size} bytes where its header needs {needed} (an interrupted download or copy?)"
        )


def _check_weights(folder: Path, names: tuple[str, ...], what: str) -> None:
    files = weight_files(folder, names)
    if not files:
        raise ModelLoadError(
            f"{folder}: holds no {what} weights ({' or '.join(names)}): an incomplete download or copy?"
        )
    for file in files:
        if file.suffix == ".safetensors":
            check_safetensors(file)
        elif file.stat().st_size == 0:
            raise ModelLoadError(f"{file}: empty (an interrupted download or copy?)")


def check_checkpoint(folder: Path, check_config: Callable[[dict[str, Any]], object] | None = None) -> str:
    """Check a local model or adapter folder before loading it; returns its kind.

    A model needs a readable config.json (which `check_config` sees first, e.g. for its
    architecture), whole weights, a tokenizer and an image-processor config; an adapter needs its
    config and whole weights (its base is checked on its own).
    """
    kind = local_kind(folder)
    if kind == "adapter":
        read_json_file(folder / ADAPTER_CONFIG_FILE)
        _check_weights(folder, ADAPTER_WEIGHT_FILES, "adapter")
        return kind
    config = read_json_file(folder / CONFIG_FILE)
    if check_config is not None:
        check_config(config)
    _check_weights(folder, WEIGHT_FILES, "model")
    if not any(all((folder / name).is_file() for name in names) for names in TOKENIZER_FILES):
        raise ModelLoadError(
            f"{folder}: holds no tokenizer (tokenizer.json, or vocab.json and merges.txt): copy the base "
            "model's tokenizer files into it"
        )
    if not any((folder / name).is_file() for name in PROCESSOR_FILES):
        raise ModelLoadError(
            f"{folder}: holds no image processor config ({' or '.join(PROCESSOR_FILES)}): copy the base "
            "model's into it"
        )
    return kind


def checkpoint_files(folder: Path) -> list[Path]:
    """The files that make a checkpoint answer as it does, in a fixed order."""
    named = [folder / name for name in IDENTITY_FILES if (folder / name).is_file()]
    weights = weight_files(folder, WEIGHT_FILES) or weight_files(folder, ADAPTER_WEIGHT_FILES)
    return sorted({*named, *weights}, key=lambda path: path.name)


def checkpoint_sha256(folder: str | Path) -> str:
    """sha256 over the names and bytes of `checkpoint_files`: the same for a copy, another for any change."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in checkpoint_files(root):
        digest.update(path.name.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
