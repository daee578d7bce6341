"""A decoding loop for Qwen2-VL and Qwen2.5-VL that samples as `generate` does, without its per-token overhead.

For a small model a decoding step of transformers' `generate` is mostly Python: input preparation, mask
building, RoPE index bookkeeping, cache classes and output dataclasses around a handful of matrix products.
`fast_sample` is a `custom_generate` for `model.generate(...)`: transformers still prepares the generation
config, the logits processors, the stopping criteria and the prefill, and this loop then runs the same
modules (each called as it is, so LoRA or quantised layers work), the same processors and the same
`torch.multinomial` / argmax on one key-value buffer sized for the whole generation. Generated text tokens
have equal temporal, height and width positions, so multimodal RoPE is 1-D RoPE at
(valid tokens before) + the prompt's rope delta. A row that has finished leaves the batch (`generate` runs
every row to the longest answer's end); sampling still draws for every row, so the random stream and the
tokens are `generate`'s. The logits equal `generate`'s up to float rounding (tests/models/test_fast_decode.py);
anything the loop does not cover goes to transformers' own loop.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from transformers import GenerationMixin
from transformers.generation.configuration_utils import GenerationMode

SUPPORTED_MODEL_TYPES = frozenset({"qwen2_vl", "qwen2_5_vl"})
PLAIN_LOOP_MODES = frozenset({GenerationMode.SAMPLE, GenerationMode.GREEDY_SEARCH})  # transformers' `_sample`
# Fused projections copy their weights for the generation: worth it where Python overhead dominates (small
# models), not where the copy would cost memory (a 2B model's would be gigabytes).
FUSED_COPY_LIMIT = 256 * 2**20


def fast_decode_unsupported(model: nn.Module) -> str | None:
    """Why `fast_sample` would hand this model to transformers' loop, or None when it decodes it itself."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return f"model type {getattr(config, 'model_type', None)!r} is not one of {sorted(SUPPORTED_MODEL_TYPES)}"
    text = config.get_text_config()
    if getattr(text, "use_sliding_window", False):
        return "sliding-window attention"
    if (getattr(text, "rope_parameters", None) or {}).get("rope_type", "default") != "default":
        return "a RoPE scaling type other than default"
    if config._attn_implementation not in ("sdpa", "eager"):
        return f"attention {config._attn_implementation!r} (the loop computes sdpa)"
    return None


def _rms_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Qwen2's RMSNorm: normalised in float32 (one fused op), cast back, then scaled."""
    if x.dtype == torch.float32 == norm.weight.dtype:
        return functional.rms_norm(x, (x.size(-1),), norm.weight, eps=norm.variance_epsilon)
    normalised = functional.rms_norm(x.float(), (x.size(-1),), eps=norm.variance_epsilon)
    return norm.weight * normalised.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """RoPE's x * cos + rotate_half(x) * sin, with rotate_half(x) * sin as the halves swapped (a roll) times
    sin with its first half negated: the same products, fewer ops."""
    return x * cos + x.roll(x.size(-1) // 2, dims=-1) * signed_sin


def _plain(module: nn.Module, kind: type[nn.Module]) -> bool:
    """Exactly `kind`, with no hooks or replaced forward (accelerate's offloading wraps `forward`)."""
    return (
        type(module) is kind
        and not module._forward_hooks
        and not module._forward_pre_hooks
        and "forward" not in vars(module)
    )


def _linear(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A plain linear layer as the bare function on its own weights (no module-call overhead), else the module."""
    if _plain(module, nn.Linear):
        weight, bias = module.weight, module.bias
        return lambda x: functional.linear(x, weight, bias)
    return module


class _KeyValueBuffers:
    """Every layer's keys and values for the whole generation, filled from the prefill's cache."""

    def __init__(self, cache: Any, capacity: int) -> None:
        self.keys, self.values = [], []
        for layer in cache.layers:
            batch, heads, length, dim = layer.keys.shape
            keys = layer.keys.new_empty(batch, heads, capacity, dim)
            values = layer.values.new_empty(batch, heads, capacity, dim)
            keys[:, :, :length] = layer.keys
            values[:, :, :length] = layer.values
            self.keys.append(keys)
            self.values.append(values)
        self.length = length

    def keep(self, rows: torch.Tensor) -> None:
        """Only these rows decode on: the others' keys and values are dropped."""
        self.keys = [keys[rows] for keys in self.keys]
        self.values = [values[rows] for values in self.values]


def _projections(modules: list[nn.Module], fuse: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The modules' outputs side by side: with `fuse`, one matrix product when all are plain linear layers
    (their weights concatenated once per generation), else each module called as it is (LoRA, quantised)."""
    plain = fuse and all(_plain(module, nn.Linear) for module in modules)
    if plain and len({module.bias is None for module in modules}) == 1:
        weight = torch.cat([module.weight for module in modules])
        bias = None if modules[0].bias is None else torch.cat([module.bias for module in modules])
        return lambda x: functional.linear(x, weight, bias)
    return lambda x: torch.cat([module(x) for module in modules], dim=-1)


class _Decoder:
    """One decoding step of the language model, its projections prepared for this generation."""

    def __init__(self, model: nn.Module, positions: range) -> None:
        self.text = text = model.model.language_model
        config = text.config
        # RoPE's cos and sin for every position the generation can reach, looked up per step
        self.first = positions.start
        freqs = torch.arange(positions.start, positions.stop, device=text.embed_tokens.weight.device).float()
        angles = freqs[:, None] * text.rotary_emb.inv_freq.float()
        angles = torch.cat((angles, angles), dim=-1)
        scale, dtype = text.rotary_emb.attention_scaling, text.embed_tokens.weight.dtype
        half = angles.size(-1) // 2
        signs = torch.cat((-torch.ones(half), torch.ones(half))).to(angles.device)
        # sin with its first half negated, for `_rotate`
        self.cos, self.sin = (angles.cos() * scale).to(dtype), (angles.sin() * scale * signs).to(dtype)
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        groups = [
            (
                [layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj],
                [layer.mlp.gate_proj, layer.mlp.up_proj],
            )
            for layer in text.layers
        ]
        copied = sum(m.weight.nbytes for attention, mlp in groups for m in attention + mlp)
        fuse = copied <= FUSED_COPY_LIMIT
        self.qkv = [_projections(attention, fuse) for attention, _ in groups]
        self.gate_up = [_projections(mlp, fuse) for _, mlp in groups]
        self.o_proj = [_linear(layer.self_attn.o_proj) for layer in text.layers]
        self.down_proj = [_linear(layer.mlp.down_proj) for layer in text.layers]
        self.act = [
            functional.silu if _plain(layer.mlp.act_fn, nn.SiLU) else layer.mlp.act_fn
            for layer in text.layers
        ]
        self.lm_head = _linear(model.lm_head)

    def step(
        self, tokens: torch.Tensor, positions: torch.Tensor, buffers: _KeyValueBuffers, bias: torch.Tensor
    ) -> torch.Tensor:
        """Logits after one token per row at `positions`; its keys and values go to `buffers.length`.
        `bias` is the additive attention mask (0 where a key is seen), cheaper in SDPA than a boolean one.

        Queries and the new key are rotated as one tensor; each key-value head's group of query heads
        attends as one batch of queries (no repeated keys).
        """
        text, heads, kv_heads, head_dim = self.text, self.heads, self.kv_heads, self.head_dim
        batch, group = tokens.size(0), heads // kv_heads
        x = text.embed_tokens(tokens[:, None])
        cos = self.cos[positions - self.first][:, None]
        sin = self.sin[positions - self.first][:, None]
        at, end = buffers.length, buffers.length + 1
        allowed = bias[:, None, None, :end]
        rotated = (heads + kv_heads) * head_dim
        for index, layer in enumerate(text.layers):
            attention = layer.self_attn
            qkv = self.qkv[index](_rms_norm(layer.input_layernorm, x))
            qk = _rotate(qkv[:, 0, :rotated].view(batch, heads + kv_heads, head_dim), cos, sin)
            buffers.keys[index][:, :, at] = qk[:, heads:]
            buffers.values[index][:, :, at] = qkv[:, 0, rotated:].view(batch, kv_heads, head_dim)
            out = functional.scaled_dot_product_attention(
                qk[:, :heads].view(batch, kv_heads, group, head_dim),
                buffers.keys[index][:, :, :end],
                buffers.values[index][:, :, :end],
                attn_mask=allowed,
                scale=attention.scaling,
            )
            x = x + self.o_proj[index](out.reshape(batch, 1, heads * head_dim))
            gate, up = self.gate_up[index](_rms_norm(layer.post_attention_layernorm, x)).chunk(2, dim=-1)
            x = x + self.down_proj[index](self.act[index](gate) * up)
        buffers.length = end
        return self.lm_head(_rms_norm(text.norm, x))[:, -1]


@contextlib.contextmanager
def _forward_autocast(model: nn.Module) -> Iterator[Callable[[], Any]]:
    """Records the autocast state the model's forward runs in (accelerate wraps `forward` in one under
    mixed precision) and yields a context that restores it for the loop's steps, which bypass `forward`."""
    state: dict[str, Any] = {}
    device = next(model.parameters()).device.type

    def record(*_: Any) -> None:
        state.update(enabled=torch.is_autocast_enabled(device), dtype=torch.get_autocast_dtype(device))

    handle = model.model.language_model.register_forward_pre_hook(record)
    try:
        yield lambda: torch.autocast(device, dtype=state["dtype"], enabled=state["enabled"])
    finally:
        handle.remove()


def _hand_over(
    model: nn.Module,
    input_ids: torch.Tensor,
    generation_config: Any,
    synced_gpus: bool,
    streamer: Any,
    model_kwargs: dict[str, Any],
) -> bool:
    """True when transformers' own loop must run: what it covers and this loop does not."""
    return bool(
        fast_decode_unsupported(model)
        or synced_gpus
        or streamer is not None
        or generation_config.return_dict_in_generate
        or generation_config.prefill_chunk_size is not None
        or not model_kwargs.get("use_cache", True)
        or (model.training and model.config.get_text_config().attention_dropout > 0)
        or input_ids.size(0) == 0
    )


def fast_sample(
    model: Any,
    input_ids: torch.Tensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    synced_gpus: bool = False,
    streamer: Any = None,
    **model_kwargs: Any,
) -> torch.Tensor:
    """`generate`'s sampling and greedy loop (its `_sample`, returning the sequences) for Qwen2-VL models.

    Pass as ``model.generate(..., custom_generate=fast_sample)`` where `fast_sample_applies`, or use
    `fast_decoding`, which checks it call by call.
    """
    capacity = stopping_criteria.max_length
    if capacity is None or _hand_over(
        model, input_ids, generation_config, synced_gpus, streamer, model_kwargs
    ):
        return GenerationMixin._sample(
            model,
            input_ids,
            logits_processor,
            stopping_criteria,
            generation_config,
            synced_gpus,
            streamer,
            **model_kwargs,
        )
    prompt_mask = model_kwargs.get("attention_mask")
    with _forward_autocast(model) as autocast:
        outputs = model._prefill(input_ids, generation_config, model_kwargs)
    rows, prompt_length = input_ids.shape
    buffers = _KeyValueBuffers(outputs.cache, capacity)
    mask = torch.ones(rows, capacity, dtype=torch.bool, device=input_ids.device)
    if prompt_mask is not None:
        mask[:, : prompt_mask.size(1)] = prompt_mask.bool()
    positions = mask[:, :prompt_length].sum(-1)  # the first generated token's, before the rope delta
    # in the dtype of the rotated queries (the weights'; autocast casts both for SDPA): no cast per layer
    dtype = model.model.language_model.embed_tokens.weight.dtype
    bias = torch.zeros(rows, capacity, dtype=dtype, device=input_ids.device).masked_fill_(
        ~mask, torch.finfo(dtype).min
    )
    del mask
    deltas = model.model.rope_deltas
    if deltas is not None:
        deltas = deltas.reshape(-1).to(positions.device)
        positions = positions + deltas.repeat_interleave(rows // deltas.numel())
    sequences = input_ids.new_empty(rows, capacity)
    sequences[:, :prompt_length] = input_ids
    length = prompt_length
    pad = generation_config._pad_token_tensor
    has_eos = any(hasattr(criterion, "eos_token_id") for criterion in stopping_criteria)
    unfinished = torch.ones(rows, dtype=torch.long, device=input_ids.device)
    decoding = torch.arange(rows, device=input_ids.device)  # the rows the model still runs
    decoder = _Decoder(
        model, range(int(positions.min()), int(positions.max()) + capacity - prompt_length + 1)
    )
    processors = list(logits_processor)
    logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32)
    del outputs
    while True:
        scores = logits
        for processor in processors:  # as LogitsProcessorList does, without its per-call signature checks
            scores = processor(sequences[:, :length], scores)
        # sampling draws for every row, finished or not: the same random stream as generate's
        if generation_config.do_sample:
            tokens = torch.multinomial(functional.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, dim=-1)
        if has_eos:
            tokens = tokens * unfinished + pad * (1 - unfinished)
        sequences[:, length] = tokens
        length += 1
        unfinished = unfinished & ~stopping_criteria(sequences[:, :length], scores)
        if unfinished.max() == 0 or length >= capacity:
            return sequences[:, :length]
        going = unfinished[decoding].bool()
        if not going.all():  # finished rows leave the batch: their tokens are padding from now on
            kept = going.nonzero().squeeze(1)
            decoding, positions, bias = decoding[kept], positions[kept], bias[kept]
            buffers.keep(kept)
        with autocast():
            step = decoder.step(tokens[decoding], positions, buffers, bias)
        logits = step.new_zeros(rows, step.size(-1), dtype=torch.float32)
        logits[decoding] = step.float()
        positions = positions + 1


def _sharded(model: nn.Module) -> bool:
    """ZeRO-3 or FSDP over several processes: generation must keep the ranks' forwards in step."""
    from transformers.integrations import is_deepspeed_zero3_enabled
    from transformers.integrations.fsdp import is_fsdp_managed_module

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    many = distributed and torch.distributed.get_world_size() > 1
    return many and (is_deepspeed_zero3_enabled() or is_fsdp_managed_module(model))


def fast_sample_applies(model: nn.Module, generate_kwargs: dict[str, Any]) -> bool:
    """Whether `model.generate(**generate_kwargs)` may decode through `fast_sample`: a supported model,
    sampling or greedy, and neither a streamer nor synchronised GPUs (transformers 5.24 does not pass
    those on to a `custom_generate`, so the loop could not see them)."""
    if any(
        generate_kwargs.get(key) is not None for key in ("custom_generate", "streamer", "assistant_model")
    ):
        return False
    if generate_kwargs.get("synced_gpus") or _sharded(model) or fast_decode_unsupported(model):
        return False
    config = copy.deepcopy(generate_kwargs.get("generation_config") or model.generation_config)
    config.update(**{key: value for key, value in generate_kwargs.items() if key != "generation_config"})
    return config.get_generation_mode() in PLAIN_LOOP_MODES


@contextlib.contextmanager
def replacing_generate(model: nn.Module, generate: Callable[..., Any]) -> Iterator[None]:
    """`model.generate` is `generate` within the block; on exit whatever was there before (a wrapper of an
    enclosing block, or the class's own method) is back."""
    previous = vars(model).get("generate")
    model.generate = generate
    try:
        yield
    finally:
        if previous is None:
            del model.generate
        else:
            model.generate = previous


@contextlib.contextmanager
def fast_decoding(model: nn.Module) -> Iterator[None]:
    """Within the block, `model.generate` decodes through `fast_sample` where `fast_sample_applies`
    (other calls run as before)."""
    original = model.generate

    @functools.wraps(original)
    def generate(*args: Any, **kwargs: Any) -> Any:
        if fast_sample_applies(model, kwargs):
            kwargs["custom_generate"] = fast_sample
        return original(*args, **kwargs)

    with replacing_generate(model, generate):
        yield
