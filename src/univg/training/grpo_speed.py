"""Speed for TRL's GRPOTrainer at equal results: each switch a config flag, each one tested to give the
same loss and gradients (or the same completions) as TRL's own path.

- `cache_vision_features`: every distinct image is encoded once per generation batch and model when the
  vision tower and merger are frozen (once per forward when they train), in generation and in every
  log-probability pass (`prompt_sharing.VisionFeatureCache`);
- `process_prompts_once`: the processor calls of a generation batch (chat template, tokenizer, image
  processor) handle each distinct prompt once and repeat its outputs to its N copies
  (`processor_sharing.DistinctRowProcessor`);
- `prefill_once`: generation prefills each distinct prompt once and copies its key-value cache to its N
  completions (`prompt_sharing.PrefillOnce`);
- `fast_decode`: completions are sampled by univg's decoding loop for Qwen2-VL models, transformers' own
  logits processors and sampling without `generate`'s per-token overhead (`models.fast_decode`);
- `pack_prompt_groups`: the log-probability passes (policy, old policy, reference) run each distinct
  prompt once, its completions packed after it under a block mask (`prompt_sharing.packed_completion_logps`);
- `skip_zero_advantage`: with no KL term (beta 0), completions whose advantage is exactly 0 have zero
  gradient; they are left out of the loss's forward and backward, the loss is rescaled to what it would
  have been, and the skipped share is logged as `perf/skipped_completions`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch
from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

from univg.models.fast_decode import fast_decoding
from univg.training.processor_sharing import DistinctRowProcessor
from univg.training.prompt_sharing import (
    PACKABLE_ATTENTION,
    PrefillOnce,
    VisionFeatureCache,
    attention_implementation,
    packed_completion_logps,
    split_row_images,
)

SKIP_METRIC = "perf/skipped_completions"


@dataclass
class GRPOSpeedArguments:
    """The speed switches of `SharedPromptWorkMixin` (all on by default; off runs TRL's own path)."""

    cache_vision_features: bool = field(
        default=True,
        metadata={
            "help": "encode each distinct image once per generation batch (frozen vision tower and merger) or "
            "once per forward (when they train), in generation and every log-probability pass"
        },
    )
    process_prompts_once: bool = field(
        default=True,
        metadata={
            "help": "process each distinct prompt of a generation batch once (chat template, tokenizer, image "
            "processor) and repeat its outputs to its copies"
        },
    )
    prefill_once: bool = field(
        default=True,
        metadata={
            "help": "prefill each distinct prompt once in generation and copy its cache to its completions"
        },
    )
    fast_decode: bool = field(
        default=True,
        metadata={
            "help": "sample Qwen2-VL / Qwen2.5-VL completions with univg's decoding loop (transformers' processors "
            "and sampling, without generate's per-token overhead; other models use generate's own loop)"
        },
    )
    pack_prompt_groups: bool = field(
        default=True,
        metadata={
            "help": "log-probability passes run each distinct prompt once with its completions packed after it "
            f"(attention {' or '.join(PACKABLE_ATTENTION)}; other attention runs TRL's per-row forward)"
        },
    )
    prefix_blocks: bool = field(
        default=True,
        metadata={
            "help": "with pack_prompt_groups, attend block by block (each completion over its prompt and itself) "
            "instead of over the dense block mask, which scores every pair of the packed row"
        },
    )
    skip_zero_advantage: bool = field(
        default=True,
        metadata={
            "help": "with beta 0, leave completions whose advantage is exactly 0 (zero gradient) out of the loss "
            f"forward and backward; the share is logged as {SKIP_METRIC}"
        },
    )


class SharedPromptWorkMixin:
    """GRPOTrainer overrides that share the work of a prompt group and skip work without effect."""

    args: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kept across generation batches, so a processor whose outputs it cannot repeat is found out once
        self.row_processor = (
            DistinctRowProcessor(self.processing_class) if self.args.process_prompts_once else None
        )
        self.vision_cache: VisionFeatureCache | None = None
        if self.args.cache_vision_features:
            self.vision_cache = VisionFeatureCache()
            self.vision_cache.install(self.model)
            if self.ref_model is not None:
                self.vision_cache.install(self.ref_model, never_trains=True)

    def _generate_and_score_completions(self, inputs):  # type: ignore[override]
        if self.vision_cache is not None:
            self.vision_cache.clear()  # a new generation batch; the policy may have changed since the last
        if self.row_processor is None:
            return super()._generate_and_score_completions(inputs)
        processor = self.processing_class
        self.row_processor.new_batch()
        self.processing_class = self.row_processor
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self.processing_class = processor

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):  # type: ignore[override]
        plain_generate = not (self.use_vllm or self.use_transformers_continuous_batching or self.tools)
        plain_generate = plain_generate and self.args.cache_implementation is None  # it brings its own cache
        model = self.accelerator.unwrap_model(self.model_wrapped)
        with contextlib.ExitStack() as stack:  # the fast loop innermost, so PrefillOnce sees it is asked for
            if self.args.prefill_once and plain_generate:
                stack.enter_context(PrefillOnce(model))
            if self.args.fast_decode and plain_generate:
                stack.enter_context(fast_decoding(model))
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )

    def _get_per_token_logps_and_entropies(  # type: ignore[override]
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        pixel_values=None,
        image_grid_thw=None,
        num_images=None,
        mm_token_type_ids=None,
        **other_fields,
    ):
        packable = (
            self.args.pack_prompt_groups
            and not compute_aux_loss
            and all(value is None for value in other_fields.values())
            and attention_implementation(model) in PACKABLE_ATTENTION
            and (image_grid_thw is None or mm_token_type_ids is not None)
        )
        if not packable:
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                pixel_values=pixel_values,
                image_grid_thw=image_grid_thw,
                num_images=num_images,
                mm_token_type_ids=mm_token_type_ids,
                **other_fields,
            )
        rows = input_ids.size(0)
        images = split_row_images(rows, pixel_values, image_grid_thw, num_images)
        chunk = batch_size or rows  # TRL's memory bound: at most this many rows per forward
        logps, entropies = [], []
        for start in range(0, rows, chunk):
            end = min(start + chunk, rows)
            with self.accelerator.autocast():
                chunk_logps, chunk_entropies, _ = packed_completion_logps(
                    model,
                    input_ids[start:end],
                    attention_mask[start:end],
                    logits_to_keep,
                    images[start:end],
                    None if mm_token_type_ids is None else mm_token_type_ids[start:end],
                    compute_entropy=compute_entropy,
                    blockwise=self.args.prefix_blocks,
                )
            logps.append(chunk_logps)
            entropies.append(chunk_entropies)
        return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None

    def _skipping_is_exact(self) -> bool:
        """A completion with advantage 0 adds nothing to the loss's gradient only when no other term
        reads it: no KL, no entropy bonus or entropy mask, no auxiliary loss."""
        return (
            self.args.skip_zero_advantage
            and self.beta == 0.0
            and not self._entropy_bonus_enabled
            and self.top_entropy_quantile >= 1.0
            and not self.aux_loss_enabled
            and self.loss_type in ("grpo", "bnpo", "dr_grpo", "dapo")
        )

    def _compute_loss(self, model, inputs):  # type: ignore[override]
        if not self._skipping_is_exact():
            return super()._compute_loss(model, inputs)
        advantages = inputs["advantages"]
        keep = advantages != 0 if advantages.dim() == 1 else (advantages != 0).any(dim=1)
        rows = keep.numel()
        mode = "train" if self.model.training else "eval"
        self._metrics[mode][SKIP_METRIC].append(1.0 - keep.float().mean().item())
        if bool(keep.all()):
            return super()._compute_loss(model, inputs)
        if not bool(keep.any()):
            # one row with advantage 0 still goes through, so every process runs a forward and a
            # backward (DDP needs both); its loss and gradient are exactly 0
            keep[0] = True
        mask = (
            inputs["completion_mask"]
            if "tool_mask" not in inputs
            else inputs["completion_mask"] * inputs["tool_mask"]
        )
        kept = _select_rows(inputs, keep)
        loss = super()._compute_loss(model, kept)
        if self.loss_type == "bnpo":  # token mean over the micro-batch: scale to all of its tokens
            return loss * (mask[keep].sum() / mask.sum().clamp(min=1))
        if self.loss_type in ("grpo", "dr_grpo"):  # mean over the micro-batch's rows
            return loss * (int(keep.sum()) / rows)
        return loss  # dapo: normalised by the generation batch's token count, which skipping leaves alone


def _select_rows(inputs: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """The rows of a TRL micro-batch where `keep` is True (images included)."""
    rows = keep.numel()
    indices = keep.nonzero().flatten().tolist()
    split = split_pixel_values_by_grid(inputs)
    selected: dict[str, Any] = {}
    for name, value in split.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.size(0) == rows:
            selected[name] = value[keep]
        elif isinstance(value, list) and len(value) == rows:
            selected[name] = [value[i] for i in indices]
        else:
            selected[name] = value
    return unsplit_pixel_values_by_grid(selected)
