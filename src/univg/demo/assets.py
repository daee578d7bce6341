"""Where the demo's packaged files live: the shipped base checkpoint and the demo recipes."""

from __future__ import annotations

from pathlib import Path

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


def recipe(name: str) -> Path:
    """A packaged demo recipe (`pretrain`, `sft`, `grpo`), usable with `univg train ... --config`."""
    path = RECIPES / f"demo_{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no packaged recipe {path}")
    return path


def recipe_args(
    name: str, model: str | Path, output_dir: str | Path, train_file: str | Path, seed: int, max_steps: int
) -> list[str]:
    """Command-line arguments for a trainer config from a packaged recipe plus what every demo run sets."""
    return [
        "--config",
        str(recipe(name)),
        "--model_name_or_path",
        str(model),
        "--output_dir",
        str(output_dir),
        "--train_files",
        str(train_file),
        "--seed",
        str(seed),
        "--max_steps",
        str(max_steps),
    ]
