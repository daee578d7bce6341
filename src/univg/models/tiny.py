"""A tiny, randomly initialised, fully functional Qwen2-VL checkpoint, built offline in seconds.

Tests, the demo and the benchmarks need a model that no machine here can download. The directory
written here is an ordinary Hugging Face checkpoint (config, safetensors weights, tokenizer with the
Qwen2-VL special tokens and chat template, processor config), so it loads through the very code path
a published checkpoint does, and TRL can reload it from its path (GRPO with beta > 0 does).

The default sizes are the ones measured to learn grounding on a 2-core CPU in minutes (see
shared/notes/learnability.md): text hidden 128, 2 layers, 4 heads / 2 kv heads, vision depth 2 x 64;
about 0.8M parameters with the trained vocabulary (0.9M with the grounding one).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.data.files import atomic_folder, check_output
from univg.models.tokenizer import QWEN2VL_SPECIAL_TOKENS, VocabKind, build_tokenizer

logger = logging.getLogger(__name__)

Family = Literal["qwen2_vl", "qwen2_5_vl"]
FAMILIES: tuple[Family, ...] = ("qwen2_vl", "qwen2_5_vl")


@dataclass(frozen=True)
class TinySpec:
    """Sizes of a tiny model. Vision output width always equals `hidden_size`, as the model requires."""

    hidden_size: int = 128
    intermediate_size: int = 512
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    # Temporal, height and width rotary sections; they must sum to head_dim / 2 (128 / 4 / 2 = 16).
    mrope_section: tuple[int, int, int] = (4, 6, 6)
    vision_depth: int = 2
    vision_width: int = 64
    vision_heads: int = 4
    max_position_embeddings: int = 4096
    # Standard deviation of the random weights. Tests raise it: at 0.02 an untrained model answers
    # every prompt with the same token, which would make "same output" checks vacuous.
    initializer_range: float = 0.02

    def problem(self) -> str | None:
        """Why these sizes cannot make a model, or None."""
        head_dim, rest = divmod(self.hidden_size, self.num_heads)
        if rest or self.num_heads % self.num_kv_heads:
            return "hidden_size must divide by num_heads, and num_heads by num_kv_heads"
        if 2 * sum(self.mrope_section) != head_dim:
            return f"mrope_section {list(self.mrope_section)} must sum to head_dim / 2 = {head_dim // 2}"
        if self.vision_width % self.vision_heads:
            return "vision_width must divide by vision_heads"
        return None


def _config(family: Family, spec: TinySpec, tokenizer: Any) -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN2VL_SPECIAL_TOKENS}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "max_window_layers": spec.num_layers,
        "initializer_range": spec.initializer_range,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": list(spec.mrope_section),
        },
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    tokens = {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }
    if family == "qwen2_vl":
        vision = {
            "depth": spec.vision_depth,
            "embed_dim": spec.vision_width,
            "hidden_size": spec.hidden_size,
            "num_heads": spec.vision_heads,
            "initializer_range": spec.initializer_range,
            "mlp_ratio": 4,
        }
        return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **tokens)
    vision = {
        "depth": spec.vision_depth,
        "hidden_size": spec.vision_width,
        "intermediate_size": 2 * spec.vision_width,
        "num_heads": spec.vision_heads,
        "initializer_range": spec.initializer_range,
        "out_hidden_size": spec.hidden_size,
        "fullatt_block_indexes": [spec.vision_depth - 1],
    }
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **tokens)


def build_tiny_model(
    out_dir: str | Path,
    *,
    vocab: VocabKind = "trained",
    seed: int = 0,
    family: Family = "qwen2_vl",
    spec: TinySpec | None = None,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    overwrite: bool = False,
) -> Path:
    """Write a random-init tiny checkpoint to `out_dir` and return its path.

    `vocab="trained"` trains a ~374-token BPE now (one digit per token); `vocab="grounding"` a ~900-token
    one holding every word of the synthetic world (half as many tokens a prompt); `vocab="qwen"` uses the
    real 151k Qwen vocabulary, so prompts tokenize exactly as for a real checkpoint. The same `seed` gives
    the same weights. The directory appears whole or not at all.
    """
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLForConditionalGeneration,
    )
    from transformers.utils import logging as hf_logging

    from univg.models.processor import build_processor

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    spec = spec or TinySpec()
    if (reason := spec.problem()) is not None:
        raise ValueError(f"invalid tiny model sizes: {reason}")
    target = check_output(out_dir, kind="folder", force=overwrite, option="overwrite")

    start = time.perf_counter()
    tokenizer = build_tokenizer(vocab, spec.max_position_embeddings)
    config = _config(family, spec, tokenizer)
    model_class = (
        Qwen2VLForConditionalGeneration if family == "qwen2_vl" else Qwen2_5_VLForConditionalGeneration
    )
    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[config.text_config.eos_token_id, config.text_config.pad_token_id],
        pad_token_id=config.text_config.pad_token_id,
    )
    processor = build_processor(tokenizer, min_pixels=min_pixels, max_pixels=max_pixels)

    # A one-shard progress bar for a 3 MB file is noise in every test and CLI run.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with atomic_folder(target) as building:
            model.save_pretrained(building)
            processor.save_pretrained(building)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    logger.debug(
        "wrote tiny %s (%s vocabulary, %d parameters) to %s in %.1fs",
        family,
        vocab,
        sum(p.numel() for p in model.parameters()),
        target,
        time.perf_counter() - start,
    )
    return target


def parameter_count(model_dir: str | Path) -> int:
    """Parameters stored in a checkpoint's safetensors files, read from their headers (no weights load)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                total += math.prod(handle.get_slice(name).get_shape())
    return total
