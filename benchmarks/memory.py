"""Peak memory of a training step per stage and per option: LoRA against full fine-tuning, a frozen
vision tower and merger against a trained one, activation checkpointing.

Each (stage, option) runs in a fresh process that builds its trainer and takes optimizer steps; on a
GPU it reports the peak of allocated GPU memory (`torch.cuda.max_memory_allocated`), on a CPU the
process's peak resident memory during the steps (VmHWM, reset after building) over what it held before.
Same random Qwen2-VL and data for all; results go to benchmarks/results/DATE-memory.{json,md}.

    python benchmarks/memory.py [--scale mid] [--new-tokens 64] [--steps 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from benchmark_support import SCALES, machine, machine_line, write_results

from univg.data.synthetic import SynthConfig, generate_dataset
from univg.evaluation.pages import Table
from univg.models.tiny import build_tiny_model

LORA = {"use_peft": True, "lora_r": 16, "lora_alpha": 32}  # TRL's lora_dropout 0.05
LORA_NO_DROPOUT = {**LORA, "lora_dropout": 0.0}  # dropout keeps a copy of every adapted layer's input
TRAINED_VISION = {"freeze_vision_tower": False, "freeze_merger": False}
CHECKPOINTING = {"activation_checkpointing": True}
OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "grpo": {
        "full, frozen vision (paper)": {},
        "full, vision trains": TRAINED_VISION,
        "full, frozen vision, activation checkpointing": CHECKPOINTING,
        "LoRA r16, frozen vision": LORA,
        "LoRA r16, vision trains": {**LORA, **TRAINED_VISION},
        "LoRA r16 without dropout, frozen vision": LORA_NO_DROPOUT,
        "LoRA r16, frozen vision, activation checkpointing": {**LORA, **CHECKPOINTING},
        "LoRA r16 without dropout, frozen vision, activation checkpointing": {
            **LORA_NO_DROPOUT,
            **CHECKPOINTING,
        },
    },
    "sft": {
        "full, frozen vision": {},
        "full, vision trains": TRAINED_VISION,
        "full, frozen vision, activation checkpointing": CHECKPOINTING,
        "LoRA r16, frozen vision": LORA,
        "LoRA r16 without dropout, frozen vision": LORA_NO_DROPOUT,
        "LoRA r16 without dropout, frozen vision, activation checkpointing": {
            **LORA_NO_DROPOUT,
            **CHECKPOINTING,
        },
    },
}
GENERATIONS = 8


def stage_config(stage: str, model: Path, data: Path, out: Path, new_tokens: int, steps: int, **fields: Any):
    common = {
        "output_dir": str(out),
        "model_name_or_path": str(model),
        "train_files": [str(data / "train.jsonl")],
        "bf16": False,
        "activation_checkpointing": False,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 1,
        "use_cpu": not torch.cuda.is_available(),
        "max_steps": steps,
        "seed": 0,
    }
    common.update(fields)
    if stage == "grpo":
        from univg.training.grpo import UniVGGRPOConfig

        return UniVGGRPOConfig(
            num_generations=GENERATIONS,
            per_device_train_batch_size=GENERATIONS,
            max_completion_length=new_tokens,
            generation_kwargs={"min_new_tokens": new_tokens},
            beta=0.04,
            **common,
        )
    from univg.training.sft import UniVGSFTConfig

    return UniVGSFTConfig(per_device_train_batch_size=GENERATIONS, max_length=2048, **common)


def resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class SavedActivations:
    """Bytes autograd keeps for the backward pass (the activations), counted once per storage and
    without the parameters it saves: exact on any device, unlike a CPU's resident memory."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.storages: dict[int, int] = {}
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.parameters:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def mib(self) -> float:
        return sum(self.storages.values()) / 2**20


def measure(request: dict[str, Any]) -> dict[str, Any]:
    """In this (fresh) process: build the stage's trainer, train, and return its peak memory in MiB."""
    torch.set_num_threads(request["threads"])
    from univg.training.grpo import build_grpo_trainer
    from univg.training.sft import build_sft_trainer

    runtime = 0.0 if torch.cuda.is_available() else resident_kib("VmRSS") / 1024  # Python + libraries

    config = stage_config(
        request["stage"],
        Path(request["model"]),
        Path(request["data"]),
        Path(request["out"]),
        request["new_tokens"],
        request["steps"],
        **request["fields"],
    )
    trainer = (build_grpo_trainer if request["stage"] == "grpo" else build_sft_trainer)(config)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    parameters = sum(p.numel() for name, p in trainer.model.named_parameters() if "lora_" not in name)
    saved = SavedActivations(trainer.model)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
        with saved.hooks:
            trainer.train()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        before = resident_kib("VmRSS") / 1024
        Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
        with saved.hooks:
            trainer.train()
        peak = resident_kib("VmHWM") / 1024
    reference = getattr(trainer, "ref_model", None)
    copies = 1 + (reference is not None)  # full-fine-tuning GRPO with beta > 0 keeps a reference model
    result = {
        "parameters": parameters,
        "trainable_parameters": trainable,
        "runtime_mib": runtime,
        "before_mib": before,
        "peak_mib": peak,
        "training_peak_mib": peak - runtime,  # comparable to a GPU's peak allocated memory
        "weights_mib": copies * parameters * 4 / 2**20,  # float32
        "gradients_and_adam_mib": 3 * trainable * 4 / 2**20,
        "saved_activations_mib": saved.mib(),
    }
    result["accounted_mib"] = accounted_peak(result)
    result["activation_checkpointing"] = bool(request["fields"].get("activation_checkpointing"))
    return result


def full_fine_tuning_alike(options: dict[str, dict[str, Any]], option: dict[str, Any]) -> dict[str, Any]:
    """The first (full fine-tuning, frozen vision) row with the option's activation checkpointing: what
    LoRA saves at one setting of it (TRL's own default has it on)."""
    return next(
        o for o in options.values() if o["activation_checkpointing"] == option["activation_checkpointing"]
    )


def accounted_peak(parts: dict[str, float]) -> float:
    """What must be resident at once: the weights and gradients, plus the saved activations during the
    backward pass or Adam's two moments after it (the optimizer step comes once activations are freed)."""
    gradients = parts["gradients_and_adam_mib"] / 3
    return parts["weights_mib"] + gradients + max(parts["saved_activations_mib"], 2 * gradients)


def markdown(result: dict[str, Any]) -> str:
    info, setting = result["machine"], result["setting"]
    what = "peak allocated GPU memory" if info["gpu"] else "peak resident memory (VmHWM)"
    lines = [
        f"# Peak memory of a training step per stage and option ({info['date']})",
        "",
        f"Command: `python benchmarks/memory.py --scale {setting['scale']} --new-tokens {setting['new_tokens']} "
        f"--steps {setting['steps']}`. Machine: {machine_line(info)}.",
        "",
        f"Random Qwen2-VL `{setting['scale']}` ({setting['parameters'] / 1e6:.1f}M parameters, "
        f"{setting['image_size']} px, two images per prompt), float32, batch of {GENERATIONS} (GRPO: one prompt "
        f"group of {GENERATIONS} completions of {setting['new_tokens']} tokens, beta 0.04, so full fine-tuning "
        f"keeps a reference copy). Each row is a fresh process; {what} while training. On a CPU the "
        "process's runtime (Python, torch, transformers: its resident memory before loading anything) is "
        "taken off, so `peak` is what the model, data, gradients, optimizer and activations need. The "
        "parts: float32 weights (two copies where full-fine-tuning GRPO keeps a reference model), gradients "
        "and Adam's two moments of what trains, and the activations autograd saved for the backward pass "
        "(counted exactly, through `saved_tensors_hooks`). `needed` is what any device must hold at once: "
        "weights and gradients, plus the activations during the backward pass or Adam's moments after it. "
        "The measured peak adds the data, temporaries (logits, generation's cache) and, on a CPU, the "
        "allocator's slack, which at this size swamps the differences; `needed` is the ratio to read. "
        "`vs full with the same checkpointing` divides by full fine-tuning's (frozen vision) with activation "
        "checkpointing alike: on or off in both (TRL's GRPO and SFT configs turn it on by default).",
        "",
    ]
    for stage, options in result["stages"].items():
        base = next(iter(options.values()))
        rows = [
            [
                name,
                f"{o['trainable_parameters'] / 1e6:.2f}M",
                f"{o['weights_mib']:.0f}",
                f"{o['gradients_and_adam_mib']:.0f}",
                f"{o['saved_activations_mib']:.0f}",
                f"{o['accounted_mib']:.0f}",
                f"**{o['accounted_mib'] / base['accounted_mib']:.2f}**",
                f"{o['accounted_mib'] / full_fine_tuning_alike(options, o)['accounted_mib']:.2f}",
                f"{o['training_peak_mib']:.0f}",
                f"{o['training_peak_mib'] / base['training_peak_mib']:.2f}",
                f"{o['runtime_mib']:.0f}",
            ]
            for name, o in options.items()
        ]
        header = ["option", "trainable", "weights MiB", "grads + Adam MiB", "activations MiB", "needed MiB"]
        header += ["needed vs first row", "vs full with the same checkpointing", "peak MiB"]
        header += ["peak vs first row", "runtime MiB"]
        lines += [f"## {stage.upper()}", "", Table(header, rows).markdown(), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", default="mid", choices=sorted(SCALES), help="default: %(default)s")
    parser.add_argument("--stages", default="grpo,sft", help="default: %(default)s")
    parser.add_argument(
        "--new-tokens", type=int, default=64, help="GRPO completion tokens (default: %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=1, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one measurement, in a child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return
    torch.set_num_threads(args.threads)
    scale = SCALES[args.scale]
    result: dict[str, Any] = {"machine": machine(), "stages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "model", spec=scale.spec, seed=0)
        data = root / "synth"
        generate_dataset(
            data, SynthConfig(n=16, n_eval=0, seed=0, image_size=scale.image_size, tasks=(scale.task,))
        )
        for stage in args.stages.split(","):
            result["stages"][stage] = {}
            for index, (name, fields) in enumerate(OPTIONS[stage].items()):
                request = {
                    "stage": stage,
                    "model": str(model),
                    "data": str(data),
                    "out": str(root / f"{stage}-{index}"),
                    "new_tokens": args.new_tokens,
                    "steps": args.steps,
                    "threads": args.threads,
                    "fields": fields,
                }
                child = subprocess.run(
                    [sys.executable, __file__, "--measure", json.dumps(request)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if child.returncode != 0:
                    raise SystemExit(f"{stage} / {name} failed:\n{child.stderr[-3000:]}")
                result["stages"][stage][name] = json.loads(child.stdout.strip().splitlines()[-1])
    result["setting"] = {
        "scale": args.scale,
        "parameters": next(iter(result["stages"][stage].values()))["parameters"],
        "image_size": scale.image_size,
        "new_tokens": args.new_tokens,
        "steps": args.steps,
    }
    text = markdown(result)
    print(text)
    for path in write_results("memory", result, text, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
