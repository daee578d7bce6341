"""Stage 2: difficulty-aware GRPO, a thin subclass of TRL's GRPOTrainer.

What UniVG-R1 adds to stock GRPO, and all this module holds:
- rewards: IoU accuracy and strict format (from `univg.core.rewards`), plus any reward by dotted path;
- difficulty-aware weighting: every completion's policy term is multiplied by phi(mIoU of its prompt
  group). The GRPO policy term is linear in the advantage (and phi >= 0 keeps its sign), so scaling the
  advantage by phi weights the policy term exactly and leaves the KL term untouched;
- observability: mean phi, easy / medium / hard group shares (the paper's Fig. 3) and the share of
  groups whose accuracy has zero variance, logged every step beside TRL's own metrics.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from univg.core.boxes import CoordSystem
from univg.core.difficulty import WEIGHT_KINDS
from univg.core.rewards import REWARD_FUNCTIONS
from univg.models.loading import load_model_and_processor
from univg.training.data import (
    TrainingDataArguments,
    load_training_samples,
    trl_dataset,
)
from univg.training.difficulty import group_difficulty
from univg.training.runner import ExactResumeMixin, TrainResult, run_trainer

# Loss types whose policy term is linear in the advantage, so weighting the advantage weights the term.
LINEAR_POLICY_LOSSES = frozenset({"grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo"})


@dataclass
class UniVGGRPOConfig(TrainingDataArguments, GRPOConfig):
    """TRL's GRPOConfig plus our data, reward and difficulty fields (YAML recipes set them all)."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "checkpoint directory or hub id"})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={"help": "reward names (accuracy, format) or dotted paths module:function"},
    )
    difficulty_weighting: str = field(
        default="exp", metadata={"help": f"phi applied to the group mIoU: one of {', '.join(WEIGHT_KINDS)}"}
    )
    difficulty_reward: str = field(
        default="accuracy", metadata={"help": "the reward whose group mean is the mIoU that phi reads"}
    )
    difficulty_eps: float = field(
        default=0.0, metadata={"help": "eps of the power weighting (1 + eps - m)^w"}
    )
    difficulty_power: float = field(default=1.0, metadata={"help": "w of the power weighting"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.difficulty_weighting not in WEIGHT_KINDS:
            raise ValueError(
                f"difficulty_weighting must be one of {WEIGHT_KINDS}, got {self.difficulty_weighting!r}"
            )
        if self.difficulty_weighting != "none" and self.loss_type not in LINEAR_POLICY_LOSSES:
            raise ValueError(
                f"difficulty weighting scales the advantage, which weights the policy term only for loss types "
                f"{sorted(LINEAR_POLICY_LOSSES)}; got loss_type={self.loss_type!r}"
            )


def resolve_reward(name: str) -> Callable[..., list[float]]:
    """A reward function by short name (`accuracy`, `format`) or dotted path (`pkg.module:function`)."""
    if name in REWARD_FUNCTIONS:
        return REWARD_FUNCTIONS[name]
    module_name, _, attribute = name.partition(":") if ":" in name else name.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(
            f"unknown reward {name!r}: use one of {sorted(REWARD_FUNCTIONS)} or a dotted path module:function"
        )
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import reward {name!r}: {exc}") from exc
    if not callable(function):
        raise ValueError(f"reward {name!r} is not callable")
    return function


def reward_function_name(function: Callable[..., Any]) -> str:
    """The name TRL logs a reward function under (`rewards/<name>/mean`)."""
    return getattr(function, "__name__", type(function).__name__)


class DifficultyAwareGRPOTrainer(ExactResumeMixin, GRPOTrainer):
    """GRPOTrainer whose advantages are weighted by phi(group mIoU), computed on the gathered rewards."""

    args: UniVGGRPOConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        processor = kwargs.get("processing_class")
        tokenizer = getattr(processor, "tokenizer", processor)
        if tokenizer is not None:
            # TRL left-pads prompt ids itself but takes mm_token_type_ids from the processor, padded on the
            # tokenizer's side: a right-padding tokenizer misaligns Qwen2-VL's rope index on mixed-length
            # prompts (TRL only sets "left" when it loads the processor itself).
            tokenizer.padding_side = "left"
        super().__init__(*args, **kwargs)
        self._suppress_vision_tokens()
        self._gathered_rewards: torch.Tensor | None = None
        wanted = self.args.difficulty_reward
        names = [reward_function_name(f) for f in self.reward_funcs]
        candidates = [i for i, n in enumerate(names) if n in (wanted, f"{wanted}_reward")]
        if not candidates:
            raise ValueError(f"difficulty_reward {wanted!r} is not among the reward functions {names}")
        self._difficulty_index = candidates[0]

    def _suppress_vision_tokens(self) -> None:
        """Never sample a vision special token into a completion.

        TRL suppresses only the image pad token, but Qwen2-VL's rope index looks for images by their
        `<|vision_start|>` token: a weak policy that samples one (it happens early in RL from a small
        model) crashes the next forward with a shape mismatch. Plain generation only; vLLM keeps its own.
        """
        if getattr(self, "generation_kwargs", None) is None:
            return
        config = self.model.config
        names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
        vision_ids = [getattr(config, name) for name in names if getattr(config, name, None) is not None]
        suppressed = sorted(set(self.generation_kwargs.get("suppress_tokens") or []) | set(vision_ids))
        self.generation_kwargs["suppress_tokens"] = suppressed
        self.generation_config.suppress_tokens = suppressed

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[override]
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards = rewards  # gathered over all processes, groups contiguous
        return rewards

    def _generate_and_score_completions(self, inputs):  # type: ignore[override]
        output = super()._generate_and_score_completions(inputs)
        if self._gathered_rewards is None:
            raise RuntimeError(
                "TRL did not compute rewards through _calculate_rewards; cannot weight by difficulty"
            )
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        difficulty = group_difficulty(
            self._gathered_rewards[:, self._difficulty_index],
            num_generations,
            self.args.difficulty_weighting,  # type: ignore[arg-type]
            eps=self.args.difficulty_eps,
            power=self.args.difficulty_power,
        )
        self._gathered_rewards = None
        start = self.accelerator.process_index * len(inputs)
        local_weights = difficulty.weights[start : start + len(inputs)].to(output["advantages"].device)
        output["advantages"] = output["advantages"] * local_weights
        metrics = self._metrics[mode]
        metrics["difficulty/phi_mean"].append(difficulty.weights.mean().item())
        metrics["difficulty/group_miou"].append(difficulty.group_mious.mean().item())
        for name, share in difficulty.bucket_shares.items():
            metrics[f"difficulty/{name}"].append(share)
        metrics["difficulty/zero_variance_groups"].append(difficulty.zero_variance_share)
        return output


def build_grpo_trainer(config: UniVGGRPOConfig) -> DifficultyAwareGRPOTrainer:
    """The trainer for a config: model, processor, mixed data, rewards."""
    if not config.model_name_or_path:
        raise ValueError("model_name_or_path is required (a checkpoint directory or hub id)")
    loaded = load_model_and_processor(
        config.model_name_or_path, min_pixels=config.min_pixels, max_pixels=config.max_pixels
    )
    if CoordSystem.parse(config.coords) is not loaded.coords:
        raise ValueError(
            f"coords={config.coords!r} but {config.model_name_or_path} writes {loaded.coords.value} boxes"
        )
    samples = load_training_samples(config)
    dataset = trl_dataset(samples, config, with_answer=False)
    return DifficultyAwareGRPOTrainer(
        model=loaded.model,
        reward_funcs=[resolve_reward(name) for name in config.reward_funcs],
        args=config,
        train_dataset=dataset,
        processing_class=loaded.processor,
    )


def train_grpo(config: UniVGGRPOConfig, *, resume: bool = False) -> TrainResult:
    """Run stage 2 and save the model and processor to `config.output_dir` (see `run_trainer`)."""
    return run_trainer(lambda: build_grpo_trainer(config), config.output_dir, resume=resume)
