"""What loads and what trains, the same for both stages: TRL's `ModelConfig` plus the parts to freeze.

Both configs inherit these fields, so a recipe sets `dtype`, `attn_implementation`, `use_peft`,
`lora_r`, `load_in_4bit` ... exactly as in TRL's own scripts, and `freeze_vision_tower` /
`freeze_merger` / `freeze_llm` on top. The defaults are the paper's: weights load in float32 (with
`bf16: true` the Trainer autocasts, so the master weights and the optimizer stay float32 and a 1e-6
update is not rounded away), the vision tower and the merger stay frozen, the language model trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn
from trl import ModelConfig, get_peft_config, get_quantization_config

from univg.core.boxes import CoordSystem
from univg.models.loading import LoadedModel, load_model_and_processor

PARTS = ("vision_tower", "merger", "llm")
# Qwen2-VL and Qwen2.5-VL keep the ViT in `model.visual` and its patch merger in `model.visual.merger`.
_MERGER_PREFIX = "model.visual.merger."
_VISION_PREFIX = "model.visual."


@dataclass
class UniVGModelConfig(ModelConfig):
    """TRL's ModelConfig (dtype, attention, LoRA, quantization) plus which model parts train."""

    freeze_vision_tower: bool = field(default=True, metadata={"help": "do not train the vision encoder"})
    freeze_merger: bool = field(
        default=True, metadata={"help": "do not train the merger that projects vision tokens into the LLM"}
    )
    freeze_llm: bool = field(default=False, metadata={"help": "do not train the language model"})

    def __post_init__(self) -> None:
        # ModelConfig's checks end the chain without calling super(); the trainer config after it in a
        # combined config's MRO (SFTConfig, GRPOConfig) must still run its own.
        ModelConfig.__post_init__(self)
        after = super(ModelConfig, self)
        if hasattr(after, "__post_init__"):
            after.__post_init__()
        if self.freeze_vision_tower and self.freeze_merger and self.freeze_llm:
            raise ValueError("every part is frozen (vision tower, merger, LLM): nothing would train")


def model_part(parameter_name: str) -> str:
    """Which part of a Qwen2-VL / Qwen2.5-VL a parameter or module belongs to (one of `PARTS`)."""
    name = parameter_name + "."
    if name.startswith(_MERGER_PREFIX):
        return "merger"
    if name.startswith(_VISION_PREFIX):
        return "vision_tower"
    return "llm"


def frozen_parts(config: UniVGModelConfig) -> set[str]:
    """The parts a config keeps as they are."""
    flags = (config.freeze_vision_tower, config.freeze_merger, config.freeze_llm)
    return {part for part, frozen in zip(PARTS, flags, strict=True) if frozen}


def freeze(model: nn.Module, frozen: set[str]) -> None:
    """Turn gradients off for the parameters of the frozen parts and on for the rest."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(model_part(name) not in frozen)


def lora_targets(model: nn.Module, frozen: set[str]) -> list[str]:
    """Every linear layer of the parts that train, except the LM head (TRL cannot train an adapter there)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name != "lm_head" and model_part(name) not in frozen
    ]


@dataclass
class TrainingModel:
    """A loaded model ready for a trainer: frozen parts applied, or the LoRA config TRL should wrap it in."""

    loaded: LoadedModel
    peft_config: Any | None


def load_training_model(config: Any) -> TrainingModel:
    """Load `config.model_name_or_path` as `config`'s model fields ask, then freeze or prepare LoRA.

    `config` is a stage config (model fields plus `min_pixels` / `max_pixels` / `coords` of the data
    fields); a model whose family writes boxes in other coordinates than `coords` is refused.
    """
    if not config.model_name_or_path:
        raise ValueError("model_name_or_path is required (a checkpoint directory or hub id)")
    quantization = get_quantization_config(config)
    loaded = load_model_and_processor(
        config.model_name_or_path,
        dtype=config.dtype,
        attn_implementation=config.attn_implementation,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
        revision=None if config.model_revision == "main" else config.model_revision,
        quantization_config=quantization,
    )
    if CoordSystem.parse(config.coords) is not loaded.coords:
        raise ValueError(
            f"coords={config.coords!r} but {config.model_name_or_path} writes {loaded.coords.value} boxes"
        )
    frozen = frozen_parts(config)
    peft_config = get_peft_config(config)
    if peft_config is not None:
        if not config.lora_target_modules:
            peft_config.target_modules = lora_targets(loaded.model, frozen)
    else:
        freeze(loaded.model, frozen)
    return TrainingModel(loaded, peft_config)
