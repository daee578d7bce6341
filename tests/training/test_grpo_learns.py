"""Stage 2 learns from its reward: on a controlled task the mean accuracy reward rises.

Stage 1 teaches the format and a spread of boxes around the top-left; stage 2's ground truth is one
fixed box lower right. Only the accuracy reward can move the boxes there (format stays flat), so a
rising accuracy reward is GRPO learning, not format polishing. Measured: 0.365 -> 0.43 in 60 steps.
"""

import json
import random
from pathlib import Path

import pytest
import torch

from univg.training.config import parse_config
from univg.training.grpo import UniVGGRPOConfig, train_grpo
from univg.training.sft import UniVGSFTConfig, train_sft

RECIPES = Path(__file__).parents[2] / "recipes"
RL_BOX = [0.3, 0.3, 0.7, 0.7]


def write_variant(source: Path, target: Path, boxes: list[list[float]]) -> None:
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    with target.open("w") as handle:
        for index, box in enumerate(boxes):
            row = {**rows[index % len(rows)], "id": f"v{index}", "box": box, "cot": "It is here."}
            handle.write(json.dumps(row) + "\n")


@pytest.mark.slow
def test_accuracy_reward_rises_during_grpo(tiny_model_dir, tmp_path):
    from univg.data.synthetic import SynthConfig, generate_dataset

    torch.set_num_threads(1)
    generate_dataset(tmp_path / "synth", SynthConfig(n=64, seed=0, tasks=("referring",), difficulty="easy"))
    source = tmp_path / "synth" / "train.jsonl"
    rng = random.Random(0)
    spread = []
    for _ in range(256):
        x, y, side = rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.5)
        spread.append([round(x, 3), round(y, 3), round(x + side, 3), round(y + side, 3)])
    write_variant(source, tmp_path / "synth" / "sft.jsonl", spread)
    write_variant(source, tmp_path / "synth" / "rl.jsonl", [RL_BOX] * 64)

    sft = parse_config(UniVGSFTConfig, [
        "--config", str(RECIPES / "sft" / "demo.yaml"), "--model_name_or_path", str(tiny_model_dir),
        "--train_files", str(tmp_path / "synth" / "sft.jsonl"), "--output_dir", str(tmp_path / "sft"),
        "--max_steps", "150", "--save_strategy", "no",
    ])  # fmt: skip
    train_sft(sft)
    grpo = parse_config(UniVGGRPOConfig, [
        "--config", str(RECIPES / "grpo" / "demo.yaml"), "--model_name_or_path", str(tmp_path / "sft"),
        "--train_files", str(tmp_path / "synth" / "rl.jsonl"), "--output_dir", str(tmp_path / "grpo"),
        "--max_steps", "60", "--save_strategy", "no", "--learning_rate", "3e-4", "--logging_steps", "5",
        "--max_completion_length", "48",
    ])  # fmt: skip
    result = train_grpo(grpo)
    steps = [entry for entry in result.log_history if "rewards/accuracy_reward/mean" in entry]
    accuracy = [entry["rewards/accuracy_reward/mean"] for entry in steps]
    formats = [entry["rewards/format_reward/mean"] for entry in steps]
    assert len(accuracy) == 12
    assert sum(accuracy[-3:]) / 3 > accuracy[0] + 0.03, accuracy
    assert abs(sum(formats[-3:]) / 3 - formats[0]) < 0.1, formats  # the rise is not format polishing
