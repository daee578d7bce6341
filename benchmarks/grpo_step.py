"""Seconds per GRPO step: univg's trainer vs stock TRL's GRPOTrainer vs the official UniVG-R1 loop's
structure, at two model scales, in one run.

Each step is one prompt group: N = 8 completions of exactly `--new-tokens` tokens (min = max, so every
system does the same work), the paper's objective (beta 0.04, float32, frozen vision tower and merger),
two images per prompt. Per scale the three systems alternate step by step after one untimed warm-up
step each, so machine load hits all alike; medians of wall and CPU seconds, completion tokens per second
and the ratios go to benchmarks/results/DATE-grpo-step.{json,md}.

- univg: `DifficultyAwareGRPOTrainer` with its defaults (the speed flags on);
- trl: stock `trl.GRPOTrainer` on the same config and model;
- official: the structure of UniVG-R1's published trainer (open-r1-multimodal), restated here: one
  `generate` over the local batch with each copy of the prompt its own row, full logits of prompt and
  completion for the policy and the reference with a per-row log-softmax, phi from the local batch's
  mean accuracy.

    python benchmarks/grpo_step.py [--scales tiny,mid] [--steps 3] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from benchmark_support import SCALES, Timed, machine, machine_line, medians, timed, write_results
from transformers import GenerationConfig
from transformers.utils import logging as transformers_logging
from trl import GRPOTrainer
from trl.data_utils import prepare_multimodal_messages

from univg.core.rewards import accuracy_reward, format_reward
from univg.data.synthetic import SynthConfig, generate_dataset
from univg.evaluation.pages import Table
from univg.models.tiny import build_tiny_model
from univg.training.data import load_training_samples, trl_dataset
from univg.training.grpo import DifficultyAwareGRPOTrainer, UniVGGRPOConfig
from univg.training.model_config import load_training_model

NUM_GENERATIONS = 8
SYSTEMS = ("univg", "trl", "official")


def grpo_config(model_dir: Path, synth_dir: Path, out: Path, new_tokens: int) -> UniVGGRPOConfig:
    return UniVGGRPOConfig(
        output_dir=str(out),
        model_name_or_path=str(model_dir),
        train_files=[str(synth_dir / "train.jsonl")],
        num_generations=NUM_GENERATIONS,
        per_device_train_batch_size=NUM_GENERATIONS,
        max_completion_length=new_tokens,
        generation_kwargs={"min_new_tokens": new_tokens},
        beta=0.04,
        learning_rate=1e-5,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        max_steps=1000,
        seed=0,
    )


class TrainerSteps:
    """Optimizer steps of a TRL-style trainer, driven one at a time (generation + scoring + loss +
    backward + update)."""

    def __init__(self, trainer: GRPOTrainer) -> None:
        self.trainer = trainer
        trainer.model.train()
        trainer.create_optimizer_and_scheduler(num_training_steps=1000)
        trainer.current_gradient_accumulation_steps = 1
        self.batches = iter(trainer.get_train_dataloader())

    def step(self) -> int:
        trainer = self.trainer
        inputs = trainer._prepare_inputs(next(self.batches))
        trainer.compute_loss(trainer.model, inputs).backward()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()
        trainer._step += 1
        return int(inputs["completion_mask"].sum())


class OfficialStructure:
    """UniVG-R1's published GRPO step, restated with univg's rewards on the same model and data."""

    def __init__(self, config: UniVGGRPOConfig, dataset: Any, new_tokens: int) -> None:
        prepared = load_training_model(config)
        self.model = prepared.loaded.model
        self.processor = prepared.loaded.processor
        self.reference = load_training_model(config).loaded.model.eval()
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad], lr=config.learning_rate
        )
        self.beta = config.beta
        self.dataset = dataset
        self.index = 0
        model_config = self.model.config
        vision = [model_config.image_token_id, model_config.video_token_id]
        vision += [model_config.vision_start_token_id, model_config.vision_end_token_id]
        self.generation = GenerationConfig(
            do_sample=True,
            temperature=1.0,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=self.processor.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id,
            suppress_tokens=vision,  # as univg's trainer does, so all three sample alike
        )

    def row_logps(
        self, model: Any, ids: torch.Tensor, mask: torch.Tensor, vision: dict[str, Any]
    ) -> torch.Tensor:
        logits = model(input_ids=ids, attention_mask=mask, **vision).logits[:, :-1]
        return torch.stack(
            [
                row.log_softmax(-1).gather(1, t.unsqueeze(1)).squeeze(1)
                for row, t in zip(logits, ids[:, 1:], strict=True)
            ]
        )

    def step(self) -> int:
        row = self.dataset[self.index % len(self.dataset)]
        self.index += 1
        rows = [row] * NUM_GENERATIONS  # the sampler repeats each prompt N times in the local batch
        texts = [
            self.processor.apply_chat_template(
                prepare_multimodal_messages(r["prompt"], images=r["images"]),
                add_generation_prompt=True,
                tokenize=False,
            )
            for r in rows
        ]
        images = [image for r in rows for image in r["images"]]
        inputs = self.processor(
            text=texts, images=images, padding=True, padding_side="left", return_tensors="pt"
        )
        self.model.train()
        with torch.no_grad():
            sequences = self.model.generate(**inputs, generation_config=self.generation)
        prompt_length = inputs["input_ids"].size(1)
        completion = sequences[:, prompt_length:]
        ends = self.generation.eos_token_id
        is_end = torch.isin(completion, torch.tensor(ends if isinstance(ends, list) else [ends]))
        end = torch.where(is_end.any(1), is_end.int().argmax(1), completion.size(1))
        completion_mask = (torch.arange(completion.size(1)) <= end.unsqueeze(1)).int()
        mask = torch.cat([inputs["attention_mask"], completion_mask], dim=1)
        types = inputs["mm_token_type_ids"]
        vision = {
            "pixel_values": inputs["pixel_values"],
            "image_grid_thw": inputs["image_grid_thw"],
            "mm_token_type_ids": torch.cat([types, types.new_zeros(completion.shape)], dim=1),
        }
        with torch.no_grad():
            reference = self.row_logps(self.reference, sequences, mask, vision)[:, prompt_length - 1 :]
        answers = self.processor.batch_decode(completion, skip_special_tokens=True)
        solutions = [r["solution"] for r in rows]
        accuracy = torch.tensor(accuracy_reward(answers, solution=solutions))
        rewards = accuracy + torch.tensor(format_reward(answers))
        advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
        weight = math.exp(1 - accuracy.mean().item())  # phi of the local batch's mean accuracy
        logps = self.row_logps(self.model, sequences, mask, vision)[:, prompt_length - 1 :]
        ratio = torch.exp(logps - logps.detach())
        policy = -torch.min(ratio * advantages[:, None], ratio.clamp(0.8, 1.2) * advantages[:, None]) * weight
        kl = torch.exp(reference - logps) - (reference - logps) - 1
        per_token = policy + self.beta * kl
        loss = ((per_token * completion_mask).sum(1) / completion_mask.sum(1)).mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return int(completion_mask.sum())


def build_systems(root: Path, scale_name: str, new_tokens: int) -> dict[str, Any]:
    scale = SCALES[scale_name]
    model_dir = build_tiny_model(root / f"{scale_name}-model", spec=scale.spec, seed=0)
    synth_dir = root / f"{scale_name}-synth"
    generate_dataset(
        synth_dir, SynthConfig(n=16, n_eval=0, seed=0, image_size=scale.image_size, tasks=(scale.task,))
    )
    systems: dict[str, Any] = {}
    # the official loop first: a config made after the last trainer resets accelerate's shared state
    for kind in ("official", "trl", "univg"):
        config = grpo_config(model_dir, synth_dir, root / f"{scale_name}-{kind}", new_tokens)
        dataset = trl_dataset(load_training_samples(config), config, with_answer=False)
        if kind == "official":
            systems[kind] = OfficialStructure(config, dataset, new_tokens)
            continue
        loaded = load_training_model(config).loaded
        loaded.processor.tokenizer.padding_side = "left"
        trainer_class = DifficultyAwareGRPOTrainer if kind == "univg" else GRPOTrainer
        trainer = trainer_class(
            model=loaded.model,
            reward_funcs=[accuracy_reward, format_reward],
            args=config,
            train_dataset=dataset,
            processing_class=loaded.processor,
        )
        systems[kind] = TrainerSteps(trainer)
    return {kind: systems[kind] for kind in SYSTEMS}


def run_scale(root: Path, scale_name: str, steps: int, new_tokens: int) -> dict[str, Any]:
    systems = build_systems(root, scale_name, new_tokens)
    parameters = sum(p.numel() for p in systems["univg"].trainer.model.parameters())
    for system in systems.values():  # warm-up: first-call costs out of the way
        system.step()
    runs: dict[str, list[Timed]] = {kind: [] for kind in systems}
    tokens: dict[str, list[int]] = {kind: [] for kind in systems}
    for _ in range(steps):
        for kind, system in systems.items():
            completion_tokens, spent = timed(system.step)
            runs[kind].append(spent)
            tokens[kind].append(completion_tokens)
    summary = {}
    for kind in systems:
        middle = medians(runs[kind])
        summary[kind] = {
            "median_wall_s": middle.wall_s,
            "median_cpu_s": middle.cpu_s,
            "completion_tokens_per_step": statistics.median(tokens[kind]),
            "completion_tokens_per_wall_s": statistics.median(tokens[kind]) / middle.wall_s,
            "wall_s": [r.wall_s for r in runs[kind]],
            "cpu_s": [r.cpu_s for r in runs[kind]],
        }
    speedups = {
        f"univg_vs_{other}": {
            "wall": summary[other]["median_wall_s"] / summary["univg"]["median_wall_s"],
            "cpu": summary[other]["median_cpu_s"] / summary["univg"]["median_cpu_s"],
        }
        for other in ("trl", "official")
    }
    scale = SCALES[scale_name]
    return {
        "parameters": parameters,
        "image_size": scale.image_size,
        "images_per_prompt": 2,
        "systems": summary,
        "speedups": speedups,
    }


def markdown(result: dict[str, Any]) -> str:
    info = result["machine"]
    setting = result["setting"]
    lines = [
        f"# GRPO step: univg vs stock TRL vs the official loop's structure ({info['date']})",
        "",
        f"Command: `python benchmarks/grpo_step.py --scales {','.join(result['scales'])} --steps {setting['steps']} "
        f"--new-tokens {setting['new_tokens']}`. Machine: {machine_line(info)}.",
        "",
        f"One prompt group per step: {setting['num_generations']} completions of exactly {setting['new_tokens']} "
        "tokens, two images per prompt, beta 0.04, float32, frozen vision tower and merger. Medians over "
        f"{setting['steps']} alternating step(s) after one warm-up step each.",
        "",
    ]
    for scale_name, scale in result["scales"].items():
        lines += [
            f"## {scale_name}: {scale['parameters'] / 1e6:.1f}M parameters, {scale['image_size']} px images",
            "",
        ]
        rows = [
            [
                kind,
                f"{s['median_wall_s']:.2f}",
                f"{s['median_cpu_s']:.2f}",
                f"{s['completion_tokens_per_wall_s']:.0f}",
                f"{s['median_wall_s'] / scale['systems']['univg']['median_wall_s']:.2f}x",
            ]
            for kind, s in scale["systems"].items()
        ]
        header = ["system", "s / step (wall)", "s / step (CPU)", "completion tokens / s", "time vs univg"]
        lines += [Table(header, rows).markdown(), ""]
        for name, ratio in scale["speedups"].items():
            lines.append(
                f"- {name.replace('_', ' ')}: **{ratio['wall']:.2f}x** wall, {ratio['cpu']:.2f}x CPU"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", default="tiny,mid", help="comma-separated, of %(default)s")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per system (default: %(default)s)")
    parser.add_argument(
        "--new-tokens", type=int, default=128, help="tokens per completion (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers_logging.disable_progress_bar()
    result: dict[str, Any] = {
        "machine": machine(),
        "setting": {"num_generations": NUM_GENERATIONS, "new_tokens": args.new_tokens, "steps": args.steps},
        "scales": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for scale_name in args.scales.split(","):
            result["scales"][scale_name] = run_scale(Path(tmp), scale_name, args.steps, args.new_tokens)
    text = markdown(result)
    print(text)
    for path in write_results("grpo-step", result, text, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
