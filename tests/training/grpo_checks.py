"""Checks of the difficulty weighting on a real generation batch, run in one process by the tests and in
two CPU processes under torchrun (the same code, so both prove the same property).

The difficulty reward here is planted: every prompt carries a known per-completion reward pattern, so
the group means differ from the means over any local batch (per-device batch != num_generations).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from univg.core.phi import phi
from univg.models.loading import load_model_and_processor
from univg.training.data import load_training_samples, trl_dataset
from univg.training.grpo import DifficultyAwareGRPOTrainer, UniVGGRPOConfig

NUM_GENERATIONS = 4


def planted_reward(completions: list[Any], id: list[str], **_: Any) -> list[float]:
    """A reward that depends on the prompt and on the completion's length, so groups differ and vary."""
    rewards = []
    for completion, sample_id in zip(completions, id, strict=True):
        text = completion if isinstance(completion, str) else completion[0]["content"]
        level = (sum(map(ord, sample_id)) % 5) / 5  # 0.0 .. 0.8, fixed per prompt
        rewards.append(min(1.0, level + 0.05 * (len(text) % 4)))
    return rewards


def build_trainer(
    model_dir: str | Path,
    synth_dir: str | Path,
    output_dir: str | Path,
    *,
    weighting: str = "exp",
    per_device_batch: int = 2,
    steps_per_generation: int = 4,
    **overrides: Any,
) -> DifficultyAwareGRPOTrainer:
    settings: dict[str, Any] = {
        "beta": 0.04,
        "learning_rate": 1e-3,
        "report_to": "none",
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 1,
        "seed": 0,
        **overrides,
    }
    config = UniVGGRPOConfig(
        output_dir=str(output_dir),
        model_name_or_path=str(model_dir),
        train_files=[str(Path(synth_dir) / "train.jsonl")],
        num_generations=NUM_GENERATIONS,
        per_device_train_batch_size=per_device_batch,
        steps_per_generation=steps_per_generation,
        max_completion_length=12,
        difficulty_weighting=weighting,
        difficulty_reward="planted",
        **settings,
    )
    loaded = load_model_and_processor(config.model_name_or_path)
    samples = load_training_samples(config)
    return DifficultyAwareGRPOTrainer(
        model=loaded.model,
        reward_funcs=[planted_reward],
        args=config,
        train_dataset=trl_dataset(samples, config, with_answer=False),
        processing_class=loaded.processor,
    )


def check_weights_on_one_batch(trainer: DifficultyAwareGRPOTrainer) -> dict[str, Any]:
    """Generate and score one generation batch; assert our advantages == group-normalised rewards * phi
    (group mean), and that the completions table logs the weighted advantages that are trained on."""
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    output = trainer._generate_and_score_completions(batch)
    gathered_rewards = torch.tensor(trainer._logs["rewards"]["planted_reward"])
    grouped = gathered_rewards.view(-1, NUM_GENERATIONS)
    group_means = grouped.mean(dim=1)
    stock_advantages = ((grouped - group_means[:, None]) / (grouped.std(dim=1)[:, None] + 1e-4)).flatten()
    expected_all = stock_advantages * torch.tensor(
        [phi(m, trainer.args.difficulty_weighting) for m in group_means.tolist()]
    ).repeat_interleave(NUM_GENERATIONS)
    start = trainer.accelerator.process_index * len(batch)
    expected_local = expected_all[start : start + len(batch)]
    torch.testing.assert_close(output["advantages"], expected_local, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        torch.tensor(list(trainer._logs["advantages"])), expected_all, rtol=1e-5, atol=1e-6
    )
    logged = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    shares = logged["difficulty/easy"] + logged["difficulty/medium"] + logged["difficulty/hard"]
    assert math.isclose(shares, 1.0, abs_tol=1e-9), shares
    per_device = trainer.args.per_device_train_batch_size
    local_batch_means_differ = any(
        not math.isclose(chunk.mean().item(), group_means[i * per_device // NUM_GENERATIONS].item())
        for i, chunk in enumerate(gathered_rewards.split(per_device))
    )
    return {
        "group_means": group_means.tolist(),
        "local_batch": len(batch),
        "local_means_differ_from_group_means": local_batch_means_differ,
        "processes": trainer.accelerator.num_processes,
    }


if __name__ == "__main__":  # torchrun --nproc_per_node 2 grpo_checks.py MODEL SYNTH OUT
    model_dir, synth_dir, output_dir = sys.argv[1:4]
    trainer = build_trainer(model_dir, synth_dir, output_dir)
    result = check_weights_on_one_batch(trainer)
    rank_file = Path(output_dir) / f"checked-rank{trainer.accelerator.process_index}.json"
    rank_file.write_text(json.dumps(result))
