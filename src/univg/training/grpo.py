"""Stage 2: difficulty-aware GRPO, a thin subclass of TRL's GRPOTrainer.

What UniVG-R1 adds to stock GRPO, and all this module holds:
- the paper's objective by default, where TRL's defaults differ: the per-response token mean
  (`loss_type="grpo"`, TRL: "dapo"), the unweighted k3 KL (`use_bias_correction_kl=False`, TRL: True,
  whose KL gradient is not the k3 one), beta 0.04 (TRL: 0, no KL), 256 completion tokens, float32
  master weights and a frozen vision tower and merger (`UniVGModelConfig`). Any departure is listed in
  the one-line summary logged at start; `paper_objective: true` (the paper recipes) refuses them;
- rewards: IoU accuracy and strict format (from `univg.core.rewards`), plus any reward by dotted path;
- difficulty-aware weighting: every completion's policy term is multiplied by phi(mIoU of its prompt
  group). The GRPO policy term is linear in the advantage (and phi >= 0 keeps its sign), so scaling the
  advantage by phi weights the policy term exactly and leaves the KL term untouched;
- observability: mean phi, easy / medium / hard group shares (the paper's Fig. 3) and the share of
  groups whose accuracy has zero variance, logged every step beside TRL's own metrics.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from univg.core.phi import PHI_KINDS, phi_formula
from univg.core.rewards import REWARD_FUNCTIONS
from univg.training.data import (
    TrainingDataArguments,
    load_training_samples,
    trl_dataset,
)
from univg.training.group_difficulty import GroupDifficulty, group_difficulty
from univg.training.grpo_speed import GRPOSpeedArguments, SharedPromptWorkMixin
from univg.training.model_config import UniVGModelConfig, frozen_parts, load_training_model
from univg.training.runner import ExactResumeMixin, TrainResult, run_trainer

logger = logging.getLogger(__name__)

# Loss types whose policy term is the same clipped ratio times the advantage, aggregated four ways
# (per response: grpo, the paper's; per token of a micro-batch: bnpo; per fixed length: dr_grpo; per token
# of the generation batch: dapo). Weighting the advantage weights their policy term exactly.
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
PAPER_REWARDS = ("accuracy", "format")
PAPER_PHIS = ("none", "exp", "log", "square")  # none is plain GRPO, the baseline of Tables 4 and 5


@dataclass
class UniVGGRPOConfig(TrainingDataArguments, GRPOSpeedArguments, UniVGModelConfig, GRPOConfig):
    """TRL's GRPOConfig and ModelConfig plus our data, reward, difficulty and speed fields, with the
    paper's objective as the defaults (YAML recipes set them all)."""

    loss_type: str = field(
        default="grpo",
        metadata={
            "help": f"policy-loss aggregation, one of {LOSS_TYPES}: grpo (the paper) averages each response's "
            "tokens, then the responses (TRL's default dapo averages over every token of the batch)"
        },
    )
    beta: float = field(
        default=0.04, metadata={"help": "coefficient of the k3 KL term (official scripts: 0.04)"}
    )
    use_bias_correction_kl: bool = field(
        default=False,
        metadata={
            "help": "multiply the KL term by the importance ratio (TRL's default); its gradient is then no "
            "longer the paper's k3 gradient beta * (1 - pi_ref / pi) * grad log pi"
        },
    )
    max_completion_length: int | None = field(
        default=256, metadata={"help": "most tokens a completion may have (the paper: 256)"}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: list(PAPER_REWARDS),
        metadata={
            "help": "reward names (accuracy, format, format_loose) or dotted paths module:function; the paper: "
            "accuracy + format"
        },
    )
    difficulty_weighting: str = field(
        default="exp", metadata={"help": f"phi applied to the group mIoU: one of {', '.join(PHI_KINDS)}"}
    )
    difficulty_reward: str = field(
        default="accuracy", metadata={"help": "the reward whose group mean is the mIoU that phi reads"}
    )
    difficulty_eps: float = field(
        default=0.0, metadata={"help": "eps of the power weighting (1 + eps - m)^w"}
    )
    difficulty_power: float = field(default=1.0, metadata={"help": "w of the power weighting"})
    paper_objective: bool = field(
        default=False,
        metadata={
            "help": "refuse any departure from the paper's objective (the paper recipes set it; pass "
            "--paper_objective false to run an ablation that departs)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.difficulty_weighting not in PHI_KINDS:
            raise ValueError(
                f"difficulty_weighting must be one of {PHI_KINDS}, got {self.difficulty_weighting!r}"
            )
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(
                f"loss_type must be one of {LOSS_TYPES} (the aggregations of the clipped policy term that "
                f"difficulty weighting weights exactly), got {self.loss_type!r}"
            )
        departures = objective_departures(self)
        if self.paper_objective and departures:
            raise ValueError(
                "paper_objective is set, but this config departs from the paper's objective: "
                + "; ".join(departures)
                + " (pass --paper_objective false to run it anyway)"
            )


def objective_departures(config: UniVGGRPOConfig) -> list[str]:
    """Every way `config` trains something other than the paper's objective, one phrase each."""
    found = []
    if config.loss_type != "grpo":
        found.append(f"loss_type {config.loss_type} (the paper averages per response: grpo)")
    if config.beta == 0:
        found.append("beta 0, no KL term (the paper keeps beta * KL(pi || pi_ref))")
    elif config.use_bias_correction_kl:
        found.append("use_bias_correction_kl (the KL gradient is not the k3 estimator's)")
    if config.scale_rewards not in ("group", True):
        found.append(f"scale_rewards {config.scale_rewards} (the paper divides by the group's std)")
    if config.multi_objective_aggregation != "sum_then_normalize":
        found.append(
            f"multi_objective_aggregation {config.multi_objective_aggregation} (the paper normalises "
            "the summed reward)"
        )
    if sorted(config.reward_funcs) != sorted(PAPER_REWARDS):
        found.append(f"rewards {config.reward_funcs} (the paper: accuracy + format)")
    if config.reward_weights is not None and any(w != 1 for w in config.reward_weights):
        found.append(f"reward_weights {config.reward_weights} (the paper sums the rewards)")
    if config.difficulty_reward != "accuracy":
        found.append(f"phi reads the {config.difficulty_reward} reward (the paper: accuracy)")
    if config.difficulty_weighting not in PAPER_PHIS:
        found.append(f"difficulty_weighting {config.difficulty_weighting} (the paper's: {PAPER_PHIS})")
    if config.dtype != "float32":
        found.append(f"dtype {config.dtype} (the paper's master weights are float32)")
    if not (config.freeze_vision_tower and config.freeze_merger) or config.freeze_llm:
        found.append(
            f"frozen parts {sorted(frozen_parts(config)) or 'none'} (the paper: vision tower, merger)"
        )
    if config.use_peft:
        found.append("LoRA adapters (the paper trains the language model in full)")
    if config.num_iterations != 1:
        found.append(f"num_iterations {config.num_iterations} (the official run updates once per batch)")
    extras = {
        "mask_truncated_completions": config.mask_truncated_completions,
        "top_entropy_quantile": config.top_entropy_quantile < 1.0,
        "entropy_coef": bool(config.entropy_coef),
        "off_policy_mask_threshold": config.off_policy_mask_threshold is not None,
        "delta": config.delta is not None,
        "importance_sampling_level sequence": config.importance_sampling_level != "token",
    }
    found += [f"{name} (not in the paper)" for name, on in extras.items() if on]
    return found


def objective_summary(config: UniVGGRPOConfig, num_processes: int = 1) -> str:
    """One line that says which objective a run optimises, departures included."""
    phi = phi_formula(
        config.difficulty_weighting,  # type: ignore[arg-type]
        eps=config.difficulty_eps,
        power=config.difficulty_power,
    )
    kl = (
        "none"
        if config.beta == 0
        else f"k3, beta {config.beta}"
        + (", times the importance ratio" if config.use_bias_correction_kl else "")
    )
    precision = "bf16 autocast" if config.bf16 else "fp16 autocast" if config.fp16 else "no autocast"
    departures = objective_departures(config)
    return (
        f"objective: loss {config.loss_type}, advantage (r - mean) / std over groups of "
        f"{config.num_generations}, r = {' + '.join(config.reward_funcs)}, phi = {phi} of the group's "
        f"{config.difficulty_reward} reward on {num_processes} process(es), KL {kl}, weights "
        f"{config.dtype} ({precision}), frozen {sorted(frozen_parts(config)) or 'nothing'}"
        f"{', LoRA' if config.use_peft else ''}; departures from the paper: "
        f"{'; '.join(departures) if departures else 'none'}"
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


class DifficultyAwareGRPOTrainer(ExactResumeMixin, SharedPromptWorkMixin, GRPOTrainer):
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
        logger.info(objective_summary(self.args, self.accelerator.num_processes))

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

    def difficulty_rewards(self, gathered: torch.Tensor) -> torch.Tensor:
        """The per-completion rewards whose group means phi reads (the accuracy reward, by default)."""
        return gathered[:, self._difficulty_index]

    def completion_difficulty(self, rewards: torch.Tensor, num_generations: int) -> GroupDifficulty:
        """phi of each completion's own group, from the rewards of every process (groups contiguous)."""
        return group_difficulty(
            rewards,
            num_generations,
            self.args.difficulty_weighting,  # type: ignore[arg-type]
            eps=self.args.difficulty_eps,
            power=self.args.difficulty_power,
        )

    def _generate_and_score_completions(self, inputs):  # type: ignore[override]
        output = super()._generate_and_score_completions(inputs)
        if self._gathered_rewards is None:
            raise RuntimeError(
                "TRL did not compute rewards through _calculate_rewards; cannot weight by difficulty"
            )
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        difficulty = self.completion_difficulty(
            self.difficulty_rewards(self._gathered_rewards), num_generations
        )
        self._gathered_rewards = None
        start = self.accelerator.process_index * len(inputs)
        local_weights = difficulty.weights[start : start + len(inputs)].to(output["advantages"].device)
        output["advantages"] = output["advantages"] * local_weights
        self._weight_logged_advantages(difficulty.weights)
        metrics = self._metrics[mode]
        metrics["difficulty/phi_mean"].append(difficulty.weights.mean().item())
        metrics["difficulty/group_miou"].append(difficulty.group_mious.mean().item())
        for name, share in difficulty.bucket_shares.items():
            metrics[f"difficulty/{name}"].append(share)
        metrics["difficulty/zero_variance_groups"].append(difficulty.zero_variance_share)
        return output

    def _weight_logged_advantages(self, weights: torch.Tensor) -> None:
        """TRL's completions table logged the advantages before weighting; log the ones trained on."""
        logged = self._logs["advantages"]
        count = len(weights)
        stock = [logged.pop() for _ in range(count)][::-1]
        logged.extend(a * w for a, w in zip(stock, weights.tolist(), strict=True))


def build_grpo_trainer(config: UniVGGRPOConfig) -> DifficultyAwareGRPOTrainer:
    """The trainer for a config: model (frozen parts or LoRA), processor, mixed data, rewards."""
    samples = load_training_samples(config)  # data first: a bad record fails before the model loads
    prepared = load_training_model(config)
    loaded = prepared.loaded
    dataset = trl_dataset(samples, config, with_answer=False)
    return DifficultyAwareGRPOTrainer(
        model=loaded.model,
        reward_funcs=[resolve_reward(name) for name in config.reward_funcs],
        args=config,
        train_dataset=dataset,
        processing_class=loaded.processor,
        peft_config=prepared.peft_config,
    )


def train_grpo(config: UniVGGRPOConfig, *, resume: bool = False) -> TrainResult:
    """Run stage 2 and save the model and processor to `config.output_dir` (see `run_trainer`)."""
    return run_trainer(lambda: build_grpo_trainer(config), config.output_dir, resume=resume)
