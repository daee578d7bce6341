"""Work the N completions of one prompt can share: its images' features and its prompt's forward.

TRL repeats every prompt N times and treats the copies as unrelated rows: it encodes the same images
N times and runs the same prompt tokens N times, in generation and in every log-probability pass
(policy, old policy, reference). Nothing in the result depends on that repetition, so this module does
each piece once per distinct prompt and hands the result to all of its completions:

- `PromptGroups` finds the rows that hold the same prompt (same tokens, same pixels);
- `VisionFeatureCache` sits in front of a model's image encoder and encodes each distinct image once:
  once per generation batch when the vision tower and merger do not train (the paper's setting), once
  per forward when they do;
- `packed_completion_logps` computes log pi(o_t | q, o_<t) of every completion with one row per distinct
  prompt: the prompt once, then each completion after it, each attending to the prompt and to itself
  only (a block mask, computed block by block by `PrefixLayout`);
- `PrefillOnce` prefills each distinct prompt once in `generate` and copies its key-value cache to the
  rows that share it, into `PreallocatedLayer` buffers sized for the whole generation (decoding writes
  in place instead of copying the whole cache at every token).

Each gives TRL's values up to float rounding (tests/training/test_grpo_speed.py).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from transformers.cache_utils import DynamicLayer

from univg.models.fast_decode import replacing_generate

IGNORE_INDEX = -100


@dataclass
class RowImages:
    """The images of one row: their patch rows (`pixel_values` slice) and grids (t, h, w)."""

    pixels: torch.Tensor | None
    grids: torch.Tensor | None

    def same_as(self, other: RowImages) -> bool:
        if self.grids is None or other.grids is None:
            return self.grids is None and other.grids is None
        return torch.equal(self.grids, other.grids) and torch.equal(self.pixels, other.pixels)


def split_row_images(
    num_rows: int,
    pixel_values: torch.Tensor | None,
    image_grid_thw: torch.Tensor | None,
    num_images: Sequence[int] | None,
) -> list[RowImages]:
    """Each row's slice of the batch's flat `pixel_values` / `image_grid_thw` (Qwen2-VL's layout)."""
    if pixel_values is None or image_grid_thw is None or num_images is None:
        return [RowImages(None, None) for _ in range(num_rows)]
    patches = image_grid_thw.prod(-1).tolist()
    rows, image, patch = [], 0, 0
    for count in num_images:
        size = sum(patches[image : image + count])
        if count:
            rows.append(RowImages(pixel_values[patch : patch + size], image_grid_thw[image : image + count]))
        else:
            rows.append(RowImages(None, None))
        image, patch = image + count, patch + size
    return rows


def _pixel_fingerprint(pixels: torch.Tensor | None) -> float:
    return 0.0 if pixels is None else float(pixels.float().sum())


@dataclass
class PromptGroups:
    """Which rows of a batch hold the same prompt: `representatives[g]` is the first row of group g,
    `group_of[b]` the group of row b."""

    representatives: list[int]
    group_of: list[int]

    @classmethod
    def find(
        cls, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, images: list[RowImages]
    ) -> PromptGroups:
        """Group rows whose real prompt tokens and pixels are identical (exact comparison)."""
        buckets: dict[tuple[Any, ...], list[int]] = {}
        representatives: list[int] = []
        group_of: list[int] = []
        for row, (ids, mask) in enumerate(zip(prompt_ids.tolist(), prompt_mask.tolist(), strict=True)):
            tokens = tuple(token for token, keep in zip(ids, mask, strict=True) if keep)
            key = (tokens, _pixel_fingerprint(images[row].pixels))
            candidates = buckets.setdefault(key, [])
            match = next((g for g in candidates if images[representatives[g]].same_as(images[row])), None)
            if match is None:
                match = len(representatives)
                representatives.append(row)
                candidates.append(match)
            group_of.append(match)
        return cls(representatives, group_of)

    def index(self, device: torch.device) -> torch.Tensor:
        return torch.tensor(self.group_of, device=device)


def vision_is_frozen(model: nn.Module) -> bool:
    """True when nothing in the vision tower or merger trains or carries an adapter, so its features
    are the same in every pass and for the reference model built from the same weights."""
    visual = getattr(vl_backbone(model), "visual", None)
    if visual is None:
        return False
    if any(parameter.requires_grad for parameter in visual.parameters()):
        return False
    return not any("lora_" in name for name, _ in visual.named_modules())


def vl_backbone(model: nn.Module) -> nn.Module:
    """The Qwen2-VL / Qwen2.5-VL base model (`visual`, `get_rope_index`) under PEFT and DDP wrappers."""
    inner = getattr(model, "module", model)  # DDP
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return getattr(inner, "model", inner)


class VisionFeatureCache:
    """Image features of one generation batch: each distinct image encoded once per model.

    `install` puts it in front of a model's image encoder (`get_image_features`), so every forward that
    sees images goes through it: TRL's generate, its log-probability passes and ours. With a frozen
    vision tower and merger (the paper's setting) a feature is computed once and served to every later
    forward until `clear()`, which the trainer calls at each new generation batch. With a vision tower
    that trains, each forward still encodes each distinct image once and hands the same feature (and its
    gradient path) to every row that holds it. Entries are keyed by the image's grid and pixel sum and
    confirmed by exact pixel comparison, so a hit is always the very image.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def clear(self) -> None:
        self._entries.clear()

    def install(self, model: nn.Module, *, never_trains: bool = False) -> None:
        """Route `model`'s image encoder through this cache (idempotent). A model that `never_trains`
        (the reference) reuses its features whatever its parameters' `requires_grad` flags say."""
        backbone = vl_backbone(model)
        encoder = backbone.get_image_features
        if getattr(encoder, "vision_feature_cache", None) is self:
            return
        original = getattr(encoder, "uncached", encoder)  # a bound method of the model

        @functools.wraps(original)
        def cached_image_features(
            pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, **kwargs: Any
        ) -> Any:
            reusable = never_trains or vision_is_frozen(backbone)
            return self.encode(backbone, original, pixel_values, image_grid_thw, reusable=reusable, **kwargs)

        cached_image_features.vision_feature_cache = self  # type: ignore[attr-defined]
        cached_image_features.uncached = original  # type: ignore[attr-defined]
        backbone.get_image_features = cached_image_features

    def encode(
        self,
        backbone: nn.Module,
        encoder: Callable[..., Any],
        pixel_values: torch.Tensor,
        image_grid_thw: torch.Tensor,
        *,
        reusable: bool,
        **kwargs: Any,
    ) -> Any:
        """What `encoder` returns for these images (per-image `pooler_output`), each distinct image once;
        `reusable` features (a vision tower that does not train) are kept for later forwards."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        kwargs.pop("return_dict", None)
        per_image = list(torch.split(pixel_values, image_grid_thw.prod(-1).tolist()))
        store: dict[tuple[Any, ...], list[tuple[torch.Tensor, torch.Tensor]]] = (
            self._entries if reusable else {}
        )
        keys = [
            (id(backbone), tuple(grid.tolist()), _pixel_fingerprint(image))
            for grid, image in zip(image_grid_thw, per_image, strict=True)
        ]
        found: list[torch.Tensor | None] = [
            _lookup(store, k, image) for k, image in zip(keys, per_image, strict=True)
        ]
        missing: list[int] = []
        for i, feature in enumerate(found):
            if feature is None and not any(
                keys[j] == keys[i] and torch.equal(per_image[j], per_image[i]) for j in missing
            ):
                missing.append(i)
        if missing:
            with torch.no_grad() if reusable else contextlib.nullcontext():
                output = encoder(
                    torch.cat([per_image[i] for i in missing]),
                    image_grid_thw[missing],
                    return_dict=True,
                    **kwargs,
                )
            for i, feature in zip(missing, output.pooler_output, strict=True):
                store.setdefault(keys[i], []).append((per_image[i], feature))
        features = [
            f if f is not None else _lookup(store, k, image)
            for f, k, image in zip(found, keys, per_image, strict=True)
        ]
        return BaseModelOutputWithPooling(pooler_output=tuple(features))


def _lookup(
    store: dict[tuple[Any, ...], list[tuple[torch.Tensor, torch.Tensor]]],
    key: tuple[Any, ...],
    image: torch.Tensor,
) -> torch.Tensor | None:
    for pixels, feature in store.get(key, []):
        if torch.equal(pixels, image):
            return feature
    return None


def _representative_images(
    images: list[RowImages], representatives: Sequence[int]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    pixels = [images[r].pixels for r in representatives if images[r].pixels is not None]
    grids = [images[r].grids for r in representatives if images[r].grids is not None]
    if not grids:
        return None, None
    return torch.cat(pixels), torch.cat(grids)


def _prompt_positions(
    backbone: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    mm_token_type_ids: torch.Tensor | None,
    image_grid_thw: torch.Tensor | None,
) -> torch.Tensor:
    """(3, rows, prompt width) rotary positions of left-padded prompts (M-RoPE when they hold images)."""
    if image_grid_thw is not None and mm_token_type_ids is not None:
        positions, _ = backbone.get_rope_index(
            prompt_ids, mm_token_type_ids, image_grid_thw=image_grid_thw, attention_mask=prompt_mask
        )
        return positions
    text = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)
    return text.unsqueeze(0).expand(3, -1, -1)


@dataclass
class PackedBatch:
    """One row per distinct prompt: the prompt but its last token, then for each completion of that
    prompt its own copy of the last prompt token followed by the completion's tokens."""

    input_ids: torch.Tensor  # (groups, length)
    segment_of: torch.Tensor  # (groups, length): -1 the prompt, -2 padding, else the completion's row
    position_ids: torch.Tensor  # (3, groups, length)
    shift_labels: torch.Tensor  # (groups, length): the token each position predicts, or -100
    segments: list[tuple[int, int, int]]  # per original row: (packed row, first position, completion length)

    def dense_mask(self) -> torch.Tensor:
        """(groups, 1, length, length), True where a token may attend."""
        return block_mask(self.segment_of)

    def prefix_layout(self) -> PrefixLayout:
        """The same mask as per-prompt and per-completion blocks."""
        prefixes = (self.segment_of == -1).sum(-1).tolist()
        spans = [
            (group, start, count + 1) for group, start, count in self.segments
        ]  # with the prompt token's copy
        return PrefixLayout.build(prefixes, spans, self.segment_of.device)


def pack_groups(
    backbone: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    groups: PromptGroups,
    prompt_mm_token_type_ids: torch.Tensor | None,
    representative_grids: torch.Tensor | None,
) -> PackedBatch:
    """Lay out every group's prompt once and its completions after it (see `PackedBatch`)."""
    device = prompt_ids.device
    reps = torch.tensor(groups.representatives, device=device)
    positions = _prompt_positions(
        backbone,
        prompt_ids[reps],
        prompt_mask[reps],
        None if prompt_mm_token_type_ids is None else prompt_mm_token_type_ids[reps],
        representative_grids,
    )
    completion_lengths = completion_mask.sum(-1).tolist()
    members: list[list[int]] = [[] for _ in groups.representatives]
    for row, group in enumerate(groups.group_of):
        members[group].append(row)
    prompts = []
    for group, rep in enumerate(groups.representatives):
        real = prompt_mask[rep].bool()
        prompts.append((prompt_ids[rep][real], positions[:, group][:, real]))
    length = max(
        len(tokens) - 1 + sum(1 + completion_lengths[row] for row in rows)
        for (tokens, _), rows in zip(prompts, members, strict=True)
    )
    num_groups = len(prompts)
    input_ids = torch.zeros(num_groups, length, dtype=prompt_ids.dtype, device=device)
    position_ids = torch.zeros(3, num_groups, length, dtype=positions.dtype, device=device)
    shift_labels = torch.full((num_groups, length), IGNORE_INDEX, dtype=prompt_ids.dtype, device=device)
    segment_of = torch.full((num_groups, length), -2, dtype=torch.long, device=device)
    segments: list[tuple[int, int, int]] = [(0, 0, 0)] * len(groups.group_of)
    for group, ((tokens, prompt_positions), rows) in enumerate(zip(prompts, members, strict=True)):
        prefix = len(tokens) - 1
        input_ids[group, :prefix] = tokens[:-1]
        position_ids[:, group, :prefix] = prompt_positions[:, :-1]
        segment_of[group, :prefix] = -1
        start = prefix
        for row in rows:
            count = completion_lengths[row]
            input_ids[group, start] = tokens[-1]
            input_ids[group, start + 1 : start + 1 + count] = completion_ids[row, :count]
            steps = torch.arange(count + 1, device=device)
            position_ids[:, group, start : start + 1 + count] = prompt_positions[:, -1:] + steps
            shift_labels[group, start : start + count] = completion_ids[row, :count]
            segment_of[group, start : start + 1 + count] = row
            segments[row] = (group, start, count)
            start += 1 + count
    return PackedBatch(input_ids, segment_of, position_ids, shift_labels, segments)


def block_mask(segment_of: torch.Tensor) -> torch.Tensor:
    """Causal attention in which the prompt sees the prompt, a completion sees the prompt and itself, and
    padding sees only itself (so no row of the mask is empty)."""
    length = segment_of.size(1)
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_of.device).tril()
    query, key = segment_of.unsqueeze(2), segment_of.unsqueeze(1)
    sees_prompt = (key == -1) & (query != -2)
    sees_itself = (query == key) & (query >= 0)
    padding_self = torch.eye(length, dtype=torch.bool, device=segment_of.device) & (query == -2)
    return (((sees_prompt | sees_itself) & causal) | padding_self).unsqueeze(1)


@dataclass
class PrefixLayout:
    """Where a packed batch's prompts and completions lie, for attention computed block by block: each
    prompt causally over itself, each completion over its prompt and causally over itself. The block
    mask's dense form costs (prompt + N completions)^2 per packed row; these blocks cost prompt^2 +
    N x completion x (prompt + completion), and no scores are computed for pairs the mask would drop.
    The masks are built once per packed batch and serve every layer."""

    prompt_width: int  # the longest prompt (positions 0 .. prompt_width - 1 of the prompt block)
    group: torch.Tensor  # (completions,): the packed row of each completion
    positions: torch.Tensor  # (completions, width): each completion's positions, padded with its first
    valid: torch.Tensor  # (completions, width): False on that padding
    prompt_mask: torch.Tensor  # (groups, 1, prompt_width, prompt_width)
    completion_mask: torch.Tensor  # (completions, 1, width, prompt_width + width): its prompt, then causal

    @classmethod
    def build(
        cls, prefixes: list[int], spans: list[tuple[int, int, int]], device: torch.device
    ) -> PrefixLayout:
        """`prefixes` are each packed row's prompt length; `spans` (packed row, first position, token count)
        per completion."""
        width, prompt_width = max(count for _, _, count in spans), max(prefixes)
        steps = torch.arange(width, device=device)
        starts = torch.tensor([start for _, start, _ in spans], device=device)
        counts = torch.tensor([count for _, _, count in spans], device=device)
        group = torch.tensor([group for group, _, _ in spans], device=device)
        valid = steps < counts[:, None]
        prompt_keys = torch.arange(prompt_width, device=device)
        sees_prompt = prompt_keys < torch.tensor(prefixes, device=device)[:, None]  # (groups, prompt_width)
        # the diagonal keeps every row non-empty (a one-token prompt has no prompt keys; some SDPA kernels
        # answer NaN for a row that sees nothing)
        prompt_mask = (prompt_keys[:, None] >= prompt_keys) & sees_prompt[:, None, :]
        prompt_mask |= torch.eye(prompt_width, dtype=torch.bool, device=device)
        own = (steps[:, None] >= steps) & valid[:, None, :]
        completion_mask = torch.cat([sees_prompt[group][:, None, :].expand(-1, width, -1), own], dim=-1)
        return cls(
            prompt_width=prompt_width,
            group=group,
            positions=torch.where(valid, starts[:, None] + steps, starts[:, None]),
            valid=valid,
            prompt_mask=prompt_mask[:, None],
            completion_mask=completion_mask[:, None],
        )

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, dropout: float
    ) -> torch.Tensor:
        """Attention of packed rows, `query` (groups, heads, length, dim), `key` and `value` with
        key-value heads; returns (groups, length, heads, dim). What padding positions hold is left open:
        no token reads them and their labels are ignored."""
        gqa = query.size(1) != key.size(1)
        width = self.prompt_width
        rows, positions = self.group[:, None], self.positions
        # gathers through index_select: its backward (index_add) sums repeated indices in order, where an
        # advanced index's backward (index_put with accumulate) adds them atomically across threads
        flat = (rows * query.size(2) + positions).flatten()

        def completion_side(states: torch.Tensor) -> torch.Tensor:  # (completions, heads, width, dim)
            packed = states.transpose(1, 2).flatten(0, 1)  # (groups x length, heads, dim)
            gathered = packed.index_select(0, flat).unflatten(0, positions.shape)
            return gathered.transpose(1, 2)

        def prompt_side(states: torch.Tensor) -> torch.Tensor:  # (completions, heads, prompt_width, dim)
            return states[:, :, :width].index_select(0, self.group)

        shared = functional.scaled_dot_product_attention(
            completion_side(query),
            torch.cat([prompt_side(key), completion_side(key)], dim=2),
            torch.cat([prompt_side(value), completion_side(value)], dim=2),
            attn_mask=self.completion_mask,
            dropout_p=dropout,
            scale=scale,
            enable_gqa=gqa,
        )
        # SDPA's dtype (autocast's, where it is on) for the output
        out = shared.new_zeros(query.size(0), query.size(2), query.size(1), query.size(3))
        if width:
            prompt = functional.scaled_dot_product_attention(
                query[:, :, :width],
                key[:, :, :width],
                value[:, :, :width],
                attn_mask=self.prompt_mask,
                dropout_p=dropout,
                scale=scale,
                enable_gqa=gqa,
            )
            out[:, :width] = prompt.transpose(1, 2)
        valid = self.valid
        return out.index_put(
            (rows.expand_as(positions)[valid], positions[valid]), shared.transpose(1, 2)[valid]
        )


PREFIX_ATTENTION = "univg_prefix_shared"


def _prefix_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: PrefixLayout,
    dropout: float = 0.0,
    scaling: float | None = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature over a `PrefixLayout` in place of a mask."""
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    return attention_mask.attend(query, key, value, scale, dropout), None


@contextlib.contextmanager
def prefix_attention(text_model: nn.Module) -> Any:
    """Within the block the text model's attention layers take a `PrefixLayout` as their mask."""
    from transformers import AttentionInterface

    AttentionInterface.register(PREFIX_ATTENTION, _prefix_attention)
    config = text_model.config
    previous = config._attn_implementation_internal
    config._attn_implementation_internal = PREFIX_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation_internal = previous


PACKABLE_ATTENTION = ("sdpa", "eager")


def attention_implementation(model: nn.Module) -> str:
    return getattr(vl_backbone(model).config, "_attn_implementation", None) or "sdpa"


def _mask_for(model: nn.Module, allowed: torch.Tensor) -> torch.Tensor:
    """The block mask as the model's attention takes it: bool for SDPA, additive for eager."""
    if attention_implementation(model) != "eager":
        return allowed
    dtype = vl_backbone(model).get_input_embeddings().weight.dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


def packed_completion_logps(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    images: list[RowImages],
    mm_token_type_ids: torch.Tensor | None = None,
    *,
    compute_entropy: bool = False,
    blockwise: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, PromptGroups]:
    """Per-token log-probabilities (and entropies) of the completions of a batch in TRL's layout
    (left-padded prompt + right-padded completion per row), with one packed row per distinct prompt.

    `model` is what TRL calls (it may be wrapped, so DDP still sees one forward) and carries TRL's fused
    LM head (`fused_lm_head=True` with `shift_labels`). `blockwise` computes the block mask's attention as
    `PrefixLayout` blocks, else over the dense mask. Returns (logps, entropies or None, groups), logps and
    entropies shaped (rows, logits_to_keep), zero past each completion's end as TRL's are.
    """
    prompt_width = input_ids.size(1) - logits_to_keep
    prompt_ids, prompt_mask = input_ids[:, :prompt_width], attention_mask[:, :prompt_width]
    completion_ids, completion_mask = input_ids[:, prompt_width:], attention_mask[:, prompt_width:]
    groups = PromptGroups.find(prompt_ids, prompt_mask, images)
    pixels, grids = _representative_images(images, groups.representatives)
    prompt_types = None if mm_token_type_ids is None else mm_token_type_ids[:, :prompt_width]
    packed = pack_groups(
        vl_backbone(model),
        prompt_ids,
        prompt_mask,
        completion_ids,
        completion_mask,
        groups,
        prompt_types,
        grids,
    )
    vision = {} if grids is None else {"pixel_values": pixels, "image_grid_thw": grids}
    text_model = vl_backbone(model).language_model
    # activation checkpointing recomputes the layers during backward, outside the block below
    blockwise = blockwise and not (
        torch.is_grad_enabled() and getattr(text_model, "gradient_checkpointing", False)
    )
    with prefix_attention(text_model) if blockwise else contextlib.nullcontext():
        outputs = model(
            input_ids=packed.input_ids,
            attention_mask={
                "full_attention": packed.prefix_layout()
                if blockwise
                else _mask_for(model, packed.dense_mask())
            },
            position_ids=packed.position_ids,
            shift_labels=packed.shift_labels,
            fused_lm_head=True,
            **vision,
        )
    logps = _unpack(outputs.log_probs, packed.segments, logits_to_keep)
    entropies = _unpack(outputs.entropy, packed.segments, logits_to_keep) if compute_entropy else None
    return logps, entropies, groups


def _unpack(values: torch.Tensor, segments: list[tuple[int, int, int]], width: int) -> torch.Tensor:
    rows = []
    for group, start, count in segments:
        row = values[group, start : start + count]
        rows.append(torch.cat([row, row.new_zeros(width - count)]))
    return torch.stack(rows)


def images_by_row(
    input_ids: torch.Tensor, image_grid_thw: torch.Tensor | None, image_token_id: int, merge_size: int
) -> list[int]:
    """How many of the batch's images (in order) each row holds, from its image-token count; `generate`
    receives the images flat, without TRL's `num_images`."""
    if image_grid_thw is None:
        return [0] * input_ids.size(0)
    tokens_per_image = (image_grid_thw.prod(-1) // merge_size**2).tolist()
    counts, image = [], 0
    for tokens in (input_ids == image_token_id).sum(-1).tolist():
        start = image
        while tokens > 0:
            tokens -= tokens_per_image[image]
            image += 1
        if tokens:
            raise ValueError("image tokens do not match the image grids")
        counts.append(image - start)
    return counts


class PreallocatedLayer(DynamicLayer):
    """A key-value cache layer whose buffers hold the whole generation: each decoding step writes its
    keys and values in place, where `DynamicLayer` concatenates (copies) the whole cache every step."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        super().__init__()
        self.device = keys.device
        self.is_initialized = True
        self._length = 0
        self._key_buffer = keys.new_empty(*keys.shape[:2], capacity, keys.shape[3])
        self._value_buffer = values.new_empty(*values.shape[:2], capacity, values.shape[3])
        self.update(keys, values)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        end = self._length + key_states.shape[-2]
        if end > self._key_buffer.shape[2]:  # more than planned: at least double, so growing stays rare
            extra = max(end, 2 * self._key_buffer.shape[2]) - self._key_buffer.shape[2]
            self._key_buffer = self._grown(self._key_buffer, extra)
            self._value_buffer = self._grown(self._value_buffer, extra)
        self._key_buffer[:, :, self._length : end] = key_states
        self._value_buffer[:, :, self._length : end] = value_states
        self._length = end
        self._slice()
        return self.keys, self.values

    @staticmethod
    def _grown(buffer: torch.Tensor, extra: int) -> torch.Tensor:
        return torch.cat([buffer, buffer.new_empty(*buffer.shape[:2], extra, buffer.shape[3])], dim=2)

    def _slice(self) -> None:
        self.keys = self._key_buffer[:, :, : self._length]
        self.values = self._value_buffer[:, :, : self._length]

    def get_seq_length(self) -> int:
        return self._length

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of tokens to remove, got {tokens_to_remove}")
        self._length = max(0, self._length + tokens_to_remove)
        self._slice()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._length == 0:  # as DynamicLayer: an empty cache keeps its rows
            return
        self._key_buffer, self._value_buffer = self._key_buffer[indices], self._value_buffer[indices]
        self._slice()

    def batch_repeat_interleave(self, repeats: int) -> None:
        rows = torch.arange(self._key_buffer.size(0), device=self._key_buffer.device)
        self.batch_select_indices(rows.repeat_interleave(repeats))


class PrefillOnce:
    """Wraps a model's `generate` so that each distinct prompt is prefilled once.

    The prompt but its last token runs once per distinct prompt; its key-value cache is copied to
    every row that holds that prompt, and `generate` continues from it: it runs the last prompt token
    and decodes, exactly as after its own prefill (same logits up to float rounding, same sampling).
    Use as a context manager around TRL's generation call. A call that brings its own decoding loop
    (`custom_generate`, e.g. `models.fast_decode`) keeps its own key-value buffers, so the copied cache is
    not preallocated for it.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.original = model.generate
        self.replaced = contextlib.ExitStack()

    def __enter__(self) -> PrefillOnce:
        @functools.wraps(self.original)
        def generate(*args: Any, **kwargs: Any) -> torch.Tensor:
            return self.generate(*args, **kwargs)

        self.replaced.enter_context(replacing_generate(self.model, generate))
        return self

    def __exit__(self, *exc: object) -> None:
        self.replaced.close()

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        backbone = vl_backbone(self.model)
        config = backbone.config
        merge = config.vision_config.spatial_merge_size
        counts = images_by_row(input_ids, image_grid_thw, config.image_token_id, merge)
        images = split_row_images(input_ids.size(0), pixel_values, image_grid_thw, counts)
        groups = PromptGroups.find(input_ids, attention_mask, images)
        reps = torch.tensor(groups.representatives, device=input_ids.device)
        pixels, grids = _representative_images(images, groups.representatives)
        prefill: dict[str, Any] = {
            "input_ids": input_ids[reps, :-1],
            "attention_mask": attention_mask[reps, :-1],
            "use_cache": True,
            "logits_to_keep": 1,
        }
        if grids is not None:
            prefill.update(
                pixel_values=pixels, image_grid_thw=grids, mm_token_type_ids=mm_token_type_ids[reps, :-1]
            )
        backbone.rope_deltas = None
        with torch.no_grad():
            cache = self.model(**prefill).cache
        index = groups.index(input_ids.device)
        new_tokens = getattr(kwargs.get("generation_config"), "max_new_tokens", None)
        if new_tokens and kwargs.get("custom_generate") is None:
            capacity = input_ids.size(1) + new_tokens
            cache.layers = [
                PreallocatedLayer(layer.keys[index], layer.values[index], capacity) for layer in cache.layers
            ]
        else:
            cache.batch_select_indices(index)
        if backbone.rope_deltas is not None:
            backbone.rope_deltas = backbone.rope_deltas[index]
        return self.original(input_ids=input_ids, attention_mask=attention_mask, cache=cache, **kwargs)
