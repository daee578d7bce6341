"""Seconds per GRPO step: univg's DifficultyAwareGRPOTrainer vs stock TRL GRPOTrainer, in one run.

Same tiny Qwen2-VL, same synthetic prompts, N = 8 completions of 128 new tokens per prompt; the two
trainers alternate step by step so machine load hits both alike. Prints a table and the ratio.

    python benchmarks/grpo_step.py [--steps 4] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from trl import GRPOTrainer

from univg.core.rewards import accuracy_reward, format_reward
from univg.data.synthetic import SynthConfig, generate_dataset
from univg.models.loading import load_model_and_processor
from univg.models.tiny import TinySpec, build_tiny_model
from univg.training.data import load_training_samples, trl_dataset
from univg.training.grpo import DifficultyAwareGRPOTrainer, UniVGGRPOConfig

NUM_GENERATIONS = 8
NEW_TOKENS = 128


def make_trainer(kind: str, model_dir: Path, synth_dir: Path, out: Path):
    config = UniVGGRPOConfig(
        output_dir=str(out / kind),
        model_name_or_path=str(model_dir),
        train_files=[str(synth_dir / "train.jsonl")],
        num_generations=NUM_GENERATIONS,
        per_device_train_batch_size=NUM_GENERATIONS,
        max_completion_length=NEW_TOKENS,
        generation_kwargs={"min_new_tokens": NEW_TOKENS},
        beta=0.04,
        learning_rate=1e-5,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        max_steps=1000,
        seed=0,
    )
    loaded = load_model_and_processor(str(model_dir))
    dataset = trl_dataset(load_training_samples(config), config, with_answer=False)
    trainer_class = DifficultyAwareGRPOTrainer if kind == "univg" else GRPOTrainer
    return trainer_class(
        model=loaded.model,
        reward_funcs=[accuracy_reward, format_reward],
        args=config,
        train_dataset=dataset,
        processing_class=loaded.processor,
    )


def timed_steps(trainer, steps: int) -> list[float]:
    """Wall seconds of each optimizer step (generation + scoring + loss + backward + update)."""
    trainer.model.train()
    trainer.create_optimizer_and_scheduler(num_training_steps=1000)
    trainer.current_gradient_accumulation_steps = 1
    batches = iter(trainer.get_train_dataloader())
    times = []
    for _ in range(steps):
        batch = next(batches)
        start = time.perf_counter()
        inputs = trainer._prepare_inputs(batch)
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()
        trainer._step += 1
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(root / "tiny", spec=TinySpec(initializer_range=0.1), seed=0)
        generate_dataset(root / "synth", SynthConfig(n=32, seed=0))
        trainers = {kind: make_trainer(kind, model_dir, root / "synth", root) for kind in ("trl", "univg")}
        for trainer in trainers.values():  # warm-up step, not timed
            timed_steps(trainer, 1)
        times: dict[str, list[float]] = {kind: [] for kind in trainers}
        for _ in range(args.steps):
            for kind, trainer in trainers.items():
                times[kind].extend(timed_steps(trainer, 1))
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    result = {
        "setting": {"num_generations": NUM_GENERATIONS, "new_tokens": NEW_TOKENS, "steps": args.steps},
        "seconds_per_step": times,
        "median_seconds_per_step": medians,
        "ratio_univg_over_trl": medians["univg"] / medians["trl"],
    }
    print(f"{'trainer':<8} {'median s/step':>14}   all steps")
    for kind, values in times.items():
        print(f"{kind:<8} {medians[kind]:>14.2f}   {', '.join(f'{v:.2f}' for v in values)}")
    print(f"univg / trl = {result['ratio_univg_over_trl']:.3f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
