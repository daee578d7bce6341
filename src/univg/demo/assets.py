"""The demo's packaged files: the shipped base checkpoint and the stage recipes, and how to use them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, TypeVar

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BASE_DIR = ASSETS / "demo_base"
RECIPES = ASSETS / "recipes"
# Every demo stage computes on two threads: 1.5x one thread on this model, and a fixed count keeps the
# numbers the same on any machine with the same instruction set, whatever its number of cores.
DEMO_THREADS = 2
# What a shipped checkpoint holds: the weights, configs, tokenizer and processor, nothing of training.
CHECKPOINT_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "processor_config.json",
    "preprocessor_config.json",
    "special_tokens_map.json",
)

ConfigT = TypeVar("ConfigT")


def recipe(name: str) -> Path:
    """A packaged demo recipe (`pretrain`, `sft`, `grpo`), usable with `univg train ... --config`."""
    path = RECIPES / f"demo_{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no packaged recipe {path}")
    return path


def recipe_config(config_class: type[ConfigT], name: str, **fields: Any) -> ConfigT:
    """A trainer config from a packaged recipe, with `fields` (model, data, output, steps) on top."""
    import yaml

    values = yaml.safe_load(recipe(name).read_text(encoding="utf-8")) or {}
    return config_class(**{**values, **fields})


def export_checkpoint(model_dir: Path, target: Path) -> Path:
    """Copy the files a checkpoint needs to load (not its optimizer or training state) to `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, target / name)
    return target
