"""The trainer's loss and gradient against an independent computation of the paper's objective.

One real optimizer step of `DifficultyAwareGRPOTrainer` on planted completions (two prompt groups of 4,
each group spread over micro-batches of 2 and 4 accumulation steps, TRL shuffling rows between them),
with the real accuracy and format rewards, against a re-computation that shares nothing with the trainer
but the model's forward: its own box parser, IoU, format check, group advantages, phi, k3 KL and loss
aggregation, with unbatched, unpadded forwards of each prompt + completion. The policy is moved away
from the reference first, so the KL term and its gradient are part of what is compared.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from univg.models.loading import load_model_and_processor
from univg.training.data import load_training_samples, trl_dataset
from univg.training.grpo import DifficultyAwareGRPOTrainer, UniVGGRPOConfig, resolve_reward
from univg.training.model_config import load_training_model

sys.path.insert(0, str(Path(__file__).parent))

NUM_GENERATIONS = 4
PER_DEVICE = 2
ACCUMULATION = 4  # 8 completions a step: two groups, each over two or more micro-batches
BETA = 0.04
# Planted answers (Qwen2-VL 0..1000): boxes of every overlap with the truth, broken formats, and one
# group-breaking length difference. 7 texts cycled over 8 slots: the two groups get different mixes.
PLANTED = (
    "<think>left</think><answer>(100, 100), (600, 600)</answer>",
    "<think>the red one</think><answer>(0, 0), (1000, 1000)</answer>",
    "<think>x</think><answer>[100, 100, 600, 600]</answer>",
    "<think>top right, above the square</think><answer>(500, 0), (1000, 500)</answer>",
    "no tags (200, 200), (700, 700)",
    "<think>a</think><answer>(300, 300), (400, 400)</answer>",
    "<think>center</think><answer>(250, 250), (750, 750)</answer>",
)


# --- the independent computation --------------------------------------------------------------------


def own_box(text: str) -> tuple[float, float, float, float] | None:
    match = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    if not match:
        return None
    numbers = re.findall(r"-?\d+(?:\.\d+)?", match.group(1))
    return tuple(float(n) / 1000 for n in numbers[:4]) if len(numbers) >= 4 else None  # type: ignore[return-value]


def own_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax1, ay1, ax2, ay2 = min(a[0], a[2]), min(a[1], a[3]), max(a[0], a[2]), max(a[1], a[3])
    bx1, by1, bx2, by2 = b
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def own_format(text: str) -> float:
    box = r"\(\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*\)"
    pattern = rf"\s*<think>((?!<think>|<answer>).)*?</think>\s*<answer>\s*{box}\s*,?\s*{box}\s*</answer>\s*"
    return 1.0 if re.fullmatch(pattern, text, re.DOTALL) else 0.0


def own_phi(miou: float, kind: str) -> float:
    m = min(1.0, max(0.0, miou))
    return {
        "none": lambda: 1.0,
        "exp": lambda: math.exp(1 - m),
        "log": lambda: -math.log(max(m, 0.02)),
        "square": lambda: (1 - m) ** 2,
        "power": lambda: (1.5 - m) ** 2,  # eps 0.5, power 2 below
    }[kind]()


def token_logps(model: Any, row: dict[str, Any]) -> torch.Tensor:
    """log pi(o_t | q, o_<t) of one completion, from one unpadded forward of prompt + completion."""
    ids = torch.cat([row["prompt_ids"], row["completion_ids"]]).unsqueeze(0)
    image_token = model.config.image_token_id
    logits = model(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        pixel_values=row["pixel_values"],
        image_grid_thw=row["image_grid_thw"],
        mm_token_type_ids=(ids == image_token).long(),
    ).logits[0]
    completion = row["completion_ids"]
    start = len(row["prompt_ids"])
    predicted = logits[start - 1 : start - 1 + len(completion)].float().log_softmax(-1)
    return predicted.gather(1, completion.unsqueeze(1)).squeeze(1)


def independent_loss(
    policy: Any,
    reference: Any,
    rows: list[dict[str, Any]],
    micro_batches: list[list[int]],
    config: Any,
    loss_type: str,
) -> torch.Tensor:
    """The paper's objective (eq. 4 with the k3 KL of eq. 3) for one generation batch, per loss type."""
    accuracy = torch.tensor([own_iou(b, r["solution"]) if (b := own_box(r["text"])) else 0.0 for r in rows])
    fmt = torch.tensor([own_format(r["text"]) for r in rows])
    reward = (accuracy + fmt).view(-1, NUM_GENERATIONS)
    advantage = ((reward - reward.mean(1, keepdim=True)) / (reward.std(1, keepdim=True) + 1e-4)).flatten()
    miou = accuracy.view(-1, NUM_GENERATIONS).mean(1)
    phi = torch.tensor([own_phi(m, config.difficulty_weighting) for m in miou.tolist()])
    phi = phi.repeat_interleave(NUM_GENERATIONS)
    per_token = []
    for i, row in enumerate(rows):
        logp = token_logps(policy, row)
        with torch.no_grad():
            ref = token_logps(reference, row)
        policy_term = -phi[i] * advantage[i] * torch.exp(logp - logp.detach())
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        per_token.append(policy_term + BETA * kl)
    if loss_type == "grpo":  # each response's token mean, then the mean over responses
        return torch.stack([t.mean() for t in per_token]).mean()
    if loss_type == "dapo":  # every token of the generation batch counts once
        return torch.cat(per_token).sum() / sum(len(t) for t in per_token)
    if loss_type == "dr_grpo":  # a fixed length per response
        return torch.cat(per_token).sum() / (len(rows) * config.max_completion_length)
    if loss_type == "bnpo":  # token mean within each micro-batch, micro-batches averaged
        return torch.stack(
            [
                torch.cat([per_token[i] for i in mb]).sum() / sum(len(per_token[i]) for i in mb)
                for mb in micro_batches
            ]
        ).mean()
    raise AssertionError(loss_type)


# --- the trainer, with planted completions -----------------------------------------------------------


class PlantedTrainer(DifficultyAwareGRPOTrainer):
    """Generates the planted texts instead of sampling, and records what each micro-batch held."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.planted_count = 0
        self.generation_batches: list[dict[str, Any]] = []
        self.micro_batch_rows: list[list[tuple[tuple[int, ...], tuple[int, ...]]]] = []

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, **_: Any):  # type: ignore[override]
        tokenizer = self.processing_class.tokenizer
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        completions = []
        for _ in prompt_ids:
            text = PLANTED[self.planted_count % len(PLANTED)]
            completions.append(tokenizer(text, add_special_tokens=False)["input_ids"] + [end])
            self.planted_count += 1
        return completions, None

    def _generate_and_score_completions(self, inputs):  # type: ignore[override]
        output = super()._generate_and_score_completions(inputs)
        self.generation_batches.append({"inputs": inputs, "output": {k: v for k, v in output.items()}})
        return output

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
        keys = []
        for p, pm, c, cm in zip(
            inputs["prompt_ids"],
            inputs["prompt_mask"],
            inputs["completion_ids"],
            inputs["completion_mask"],
            strict=True,
        ):
            keys.append((tuple(p[pm.bool()].tolist()), tuple(c[cm.bool()].tolist())))
        self.micro_batch_rows.append(keys)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


class CaptureGradients(TrainerCallback):
    """Copies every trainable parameter's accumulated gradient just before the optimizer step."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def build(model_dir: Path, synth_dir: Path, out: Path, trainer_class: type = PlantedTrainer, **fields: Any):
    fields = {"beta": BETA, **fields}
    config = UniVGGRPOConfig(
        output_dir=str(out),
        model_name_or_path=str(model_dir),
        train_files=[str(synth_dir / "train.jsonl")],
        num_generations=NUM_GENERATIONS,
        per_device_train_batch_size=PER_DEVICE,
        gradient_accumulation_steps=ACCUMULATION,
        max_completion_length=24,
        max_steps=1,
        max_grad_norm=0.0,  # compare the raw gradient, before clipping
        learning_rate=1e-3,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
        **fields,
    )
    loaded = load_training_model(config).loaded  # frozen vision tower and merger, as the paper
    trainer = trainer_class(
        model=loaded.model,
        reward_funcs=[resolve_reward(name) for name in config.reward_funcs],
        args=config,
        train_dataset=trl_dataset(load_training_samples(config), config, with_answer=False),
        processing_class=loaded.processor,
    )
    with torch.no_grad():  # move the policy off the reference so the KL term has a gradient
        generator = torch.Generator().manual_seed(1)
        for parameter in trainer.model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return trainer


def rows_of(trainer: PlantedTrainer) -> list[dict[str, Any]]:
    """Each completion of the step's generation batch, in generation order (groups contiguous)."""
    (batch,) = trainer.generation_batches
    out = batch["output"]
    grids = out["image_grid_thw"]
    patches = grids.prod(-1).tolist()
    starts = [0, *torch.tensor(patches).cumsum(0).tolist()]
    tokenizer = trainer.processing_class.tokenizer
    rows, image = [], 0
    for i, sample in enumerate(batch["inputs"]):
        count = out["num_images"][i]
        pixels = out["pixel_values"][starts[image] : starts[image + count]]
        completion = out["completion_ids"][i][out["completion_mask"][i].bool()]
        rows.append(
            {
                "prompt_ids": out["prompt_ids"][i][out["prompt_mask"][i].bool()],
                "completion_ids": completion,
                "pixel_values": pixels,
                "image_grid_thw": grids[image : image + count],
                "solution": tuple(sample["solution"]),
                "text": tokenizer.decode(completion, skip_special_tokens=True),
            }
        )
        image += count
    return rows


def micro_batches_of(trainer: PlantedTrainer, rows: list[dict[str, Any]]) -> list[list[int]]:
    keys = [(tuple(r["prompt_ids"].tolist()), tuple(r["completion_ids"].tolist())) for r in rows]
    batches, taken = [], set()
    for micro in trainer.micro_batch_rows:
        indices = []
        for key in micro:
            index = next(i for i, k in enumerate(keys) if k == key and i not in taken)
            taken.add(index)
            indices.append(index)
        batches.append(indices)
    assert sorted(taken) == list(range(len(rows)))
    return batches


def gradient_error(
    model_dir: Path,
    synth_dir: Path,
    out: Path,
    trainer_class: type = PlantedTrainer,
    expected_loss_type: str | None = None,
    **fields: Any,
):
    """(relative gradient error, loss of the independent computation, the trainer) for one real step;
    the independent loss aggregates as `expected_loss_type` (default: the trainer's loss type)."""
    trainer = build(model_dir, synth_dir, out, trainer_class, **fields)
    # A fresh module with the weights the step starts from (TRL patches the trainer's model's forward,
    # so a deep copy would still run the original's parameters).
    policy = load_model_and_processor(model_dir, dtype="float32").model
    policy.load_state_dict(trainer.model.state_dict())
    trains = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    for name, parameter in policy.named_parameters():
        parameter.requires_grad_(name in trains)
    capture = CaptureGradients()
    trainer.add_callback(capture)
    trainer.train()
    rows = rows_of(trainer)
    reference = load_model_and_processor(model_dir, dtype="float32").model
    loss_type = expected_loss_type or trainer.args.loss_type
    loss = independent_loss(policy, reference, rows, micro_batches_of(trainer, rows), trainer.args, loss_type)
    loss.backward()
    names = sorted(capture.grads)
    expected = {n: p.grad for n, p in policy.named_parameters() if p.grad is not None}
    assert names == sorted(expected), "the same parameters must train"
    ours = torch.cat([capture.grads[n].flatten() for n in names])
    theirs = torch.cat([expected[n].flatten() for n in names])
    return ((ours - theirs).norm() / theirs.norm()).item(), loss.item(), trainer


# --- the tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss_type", "weighting"),
    [("grpo", kind) for kind in ("none", "exp", "log", "square", "power")]
    + [(loss, "exp") for loss in ("bnpo", "dr_grpo", "dapo")],
)
def test_a_real_step_has_the_gradient_of_the_papers_objective(
    tiny_varied_model_dir, synth_dir, tmp_path, loss_type, weighting
):
    error, loss, trainer = gradient_error(
        tiny_varied_model_dir,
        synth_dir,
        tmp_path,
        loss_type=loss_type,
        difficulty_weighting=weighting,
        difficulty_eps=0.5,
        difficulty_power=2.0,
    )
    rows = rows_of(trainer)
    accuracy = [own_iou(b, r["solution"]) if (b := own_box(r["text"])) else 0.0 for r in rows]
    assert len(set(accuracy)) > 2 and {own_format(r["text"]) for r in rows} == {0.0, 1.0}  # a real mix
    assert all(len(mb) == PER_DEVICE for mb in micro_batches_of(trainer, rows))
    logged = trainer.state.log_history[0]
    assert logged["kl"] > 0  # the policy really is off the reference
    assert error < 1e-5, f"relative gradient error {error:.2e}"
    assert math.isfinite(loss)


class PhiFromTotalReward(PlantedTrainer):
    """Planted mistake: phi reads the mean of the summed reward (accuracy + format), not of the accuracy."""

    def difficulty_rewards(self, gathered):  # type: ignore[override]
        return gathered.sum(dim=1)


class PhiFromLocalBatch(PlantedTrainer):
    """Planted mistake: the official code's mIoU, the mean over a per-device batch instead of the group."""

    def completion_difficulty(self, rewards, num_generations):  # type: ignore[override]
        exact = super().completion_difficulty(rewards, num_generations)
        local = rewards.view(-1, PER_DEVICE).mean(dim=1).repeat_interleave(PER_DEVICE)
        exact.weights = torch.exp(1 - local)
        return exact


@pytest.mark.parametrize("mutant", [PhiFromTotalReward, PhiFromLocalBatch])
def test_the_comparison_catches_planted_phi_mistakes(tiny_varied_model_dir, synth_dir, tmp_path, mutant):
    error, _, _ = gradient_error(
        tiny_varied_model_dir, synth_dir, tmp_path, mutant, difficulty_weighting="exp"
    )
    assert error > 1e-3, f"a wrong phi went unnoticed (relative gradient error {error:.2e})"


@pytest.mark.parametrize(
    "trl_default",
    [{"use_bias_correction_kl": True}, {"loss_type": "dapo"}],
    ids=["bias_corrected_kl", "dapo"],
)
def test_trls_defaults_are_not_the_papers_objective(tiny_varied_model_dir, synth_dir, tmp_path, trl_default):
    """What the defaults of UniVGGRPOConfig correct: either TRL default alone moves the gradient."""
    error, _, _ = gradient_error(
        tiny_varied_model_dir, synth_dir, tmp_path, expected_loss_type="grpo", **trl_default
    )
    assert error > 1e-3, f"relative gradient error {error:.2e}"


def test_on_policy_grpo_loss_value_ignores_phi_but_its_gradient_does_not(
    tiny_varied_model_dir, synth_dir, tmp_path
):
    """Why the tests compare gradients: each group's advantages sum to zero, so on-policy the weighted
    policy term has value 0 whatever phi is; only the gradient tells the weightings apart."""
    results = {}
    for weighting in ("none", "exp"):
        trainer = build(
            tiny_varied_model_dir, synth_dir, tmp_path / weighting, difficulty_weighting=weighting, beta=0.0
        )
        capture = CaptureGradients()
        trainer.add_callback(capture)
        trainer.train()
        results[weighting] = (
            trainer.state.log_history[0]["loss"],
            torch.cat([g.flatten() for g in capture.grads.values()]),
        )
    (loss_none, grad_none), (loss_exp, grad_exp) = results["none"], results["exp"]
    assert loss_none == pytest.approx(loss_exp, abs=1e-6)
    assert (grad_none - grad_exp).norm() > 1e-3 * grad_none.norm()
