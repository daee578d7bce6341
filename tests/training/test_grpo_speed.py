"""Each GRPO speed flag against TRL's own path: the same completions, log-probabilities, loss and
gradients, on the tiny varied model (float32, so "the same" means float rounding: 1e-5 relative; CPUs
differ in their kernels' summation order, an AMD EPYC measured 1.01e-6 where an Intel Xeon stayed below 1e-6)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.cache_utils import DynamicLayer
from trl import GRPOTrainer
from trl.data_utils import prepare_multimodal_messages

from univg.training.grpo import DifficultyAwareGRPOTrainer
from univg.training.grpo_speed import SKIP_METRIC
from univg.training.prompt_sharing import (
    PreallocatedLayer,
    PrefixLayout,
    PromptGroups,
    block_mask,
    split_row_images,
)

sys.path.insert(0, str(Path(__file__).parent))
import test_grpo_objective as objective
from test_processor_sharing import ImageCounter

SPEED_FLAGS = (
    "cache_vision_features",
    "process_prompts_once",
    "prefill_once",
    "fast_decode",
    "pack_prompt_groups",
    "skip_zero_advantage",
)
ALL_OFF = dict.fromkeys(SPEED_FLAGS, False)
NO_FORMAT = "no tags (200, 200), (700, 700)"  # accuracy 0, format 0


class Planted(objective.PlantedTrainer):
    """The objective test's planted trainer, with the planted texts as a class attribute."""

    texts: tuple[str, ...] = objective.PLANTED

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, **_: Any):  # type: ignore[override]
        tokenizer = self.processing_class.tokenizer
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        completions = []
        for _ in prompt_ids:
            text = self.texts[self.planted_count % len(self.texts)]
            completions.append(tokenizer(text, add_special_tokens=False)["input_ids"] + [end])
            self.planted_count += 1
        return completions, None


class OneGroupWithoutSignal(Planted):
    """The first prompt's four completions all score 0: their advantages are exactly 0."""

    texts = (NO_FORMAT,) * 4 + objective.PLANTED[:4]


def one_step(model_dir, synth_dir, out, trainer_class=Planted, **fields) -> tuple[float, torch.Tensor, Any]:
    """(logged loss, flat gradient, trainer) of one optimizer step on planted completions."""
    trainer = objective.build(model_dir, synth_dir, out, trainer_class, **fields)
    capture = objective.CaptureGradients()
    trainer.add_callback(capture)
    trainer.train()
    names = sorted(capture.grads)
    return (
        trainer.state.log_history[0]["loss"],
        torch.cat([capture.grads[n].flatten() for n in names]),
        trainer,
    )


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize(
    ("flag", "fields", "trainer_class"),
    [
        ("process_prompts_once", {}, Planted),
        ("cache_vision_features", {}, Planted),
        ("cache_vision_features", {"freeze_vision_tower": False, "freeze_merger": False}, Planted),
        ("pack_prompt_groups", {}, Planted),  # block by block (prefix_blocks, the default)
        ("pack_prompt_groups", {"prefix_blocks": False}, Planted),
        ("pack_prompt_groups", {"beta": 0.0, "loss_type": "bnpo"}, Planted),
        # the dense mask under recompute
        ("pack_prompt_groups", {"activation_checkpointing": True}, Planted),
        ("skip_zero_advantage", {"beta": 0.0}, OneGroupWithoutSignal),
        ("skip_zero_advantage", {"beta": 0.0, "loss_type": "bnpo"}, OneGroupWithoutSignal),
    ],
    ids=[
        "process-once",
        "vision-frozen",
        "vision-trains",
        "pack-blocks",
        "pack-dense-mask",
        "pack-bnpo",
        "pack-checkpointed",
        "skip",
        "skip-bnpo",
    ],
)
def test_a_flag_keeps_the_loss_and_gradient_of_a_step(
    tiny_varied_model_dir, synth_dir, tmp_path, flag, fields, trainer_class
):
    off_loss, off_grad, _ = one_step(
        tiny_varied_model_dir, synth_dir, tmp_path / "off", trainer_class, **ALL_OFF, **fields
    )
    on = {**ALL_OFF, flag: True}
    on_loss, on_grad, trainer = one_step(
        tiny_varied_model_dir, synth_dir, tmp_path / "on", trainer_class, **on, **fields
    )
    assert off_grad.norm() > 0
    assert relative(on_grad, off_grad) < 1e-5
    assert on_loss == pytest.approx(off_loss, rel=1e-5, abs=1e-9)
    if flag == "skip_zero_advantage":
        assert trainer.state.log_history[0][SKIP_METRIC] == pytest.approx(0.5)  # one of two groups


def test_skipping_waits_for_beta_zero(tiny_varied_model_dir, synth_dir, tmp_path):
    """With a KL term every completion has a gradient, so nothing is skipped."""
    _, _, trainer = one_step(tiny_varied_model_dir, synth_dir, tmp_path, OneGroupWithoutSignal)
    assert SKIP_METRIC not in trainer.state.log_history[0]


class CountEncodedImages:
    """Counts the images a vision tower encodes (a forward hook: independent of the cache's counters)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.images = 0
        model.model.visual.register_forward_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs, output):
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.images += len(grid)


class CountingTrainer(DifficultyAwareGRPOTrainer):
    """Generates for real (short completions) and counts what each model's vision tower encodes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy_count = CountEncodedImages(self.model)
        self.reference_count = CountEncodedImages(self.ref_model)
        self.generation_inputs: list[list[dict[str, Any]]] = []

    def _generate_and_score_completions(self, inputs):  # type: ignore[override]
        self.generation_inputs.append(inputs)
        return super()._generate_and_score_completions(inputs)


def test_each_distinct_image_is_encoded_once_per_model_per_generation_batch(
    tiny_varied_model_dir, synth_dir, tmp_path
):
    trainer = objective.build(tiny_varied_model_dir, synth_dir, tmp_path, CountingTrainer)
    trainer.train()
    (batch,) = trainer.generation_inputs
    images = sum(len(x["images"]) for x in batch) // objective.NUM_GENERATIONS
    assert len({x["id"] for x in batch}) == 2 and images > 2
    # policy: once in generation, then served to its log-probability passes; reference: once
    assert trainer.policy_count.images == images
    assert trainer.reference_count.images == images


@pytest.mark.parametrize("once", [True, False], ids=["process-once", "trl"])
def test_each_distinct_prompt_is_processed_once_per_processor_call(
    tiny_varied_model_dir, synth_dir, tmp_path, once
):
    trainer = objective.build(
        tiny_varied_model_dir, synth_dir, tmp_path, CountingTrainer, process_prompts_once=once
    )
    counter = ImageCounter(trainer.processing_class)
    trainer.processing_class.image_processor = counter
    trainer.train()
    (batch,) = trainer.generation_inputs
    images = sum(len(x["images"]) for x in batch)
    # TRL processes a batch's images twice: for generation and for the log-probability passes
    assert counter.images == 2 * (images // objective.NUM_GENERATIONS if once else images)


def generation_batch(trainer) -> tuple[list, list, dict]:
    batch = next(iter(trainer.get_train_dataloader()))
    prompts = [prepare_multimodal_messages(x["prompt"], images=x["images"]) for x in batch]
    return trainer._tokenize_prompts(prompts)


GENERATION_FLAGS = {
    "prefill-once": {"prefill_once": True, "fast_decode": False},
    "fast-decode": {"prefill_once": False, "fast_decode": True},
    "both": {"prefill_once": True, "fast_decode": True},
}


@pytest.mark.parametrize("flags", GENERATION_FLAGS)
@pytest.mark.parametrize("temperature", [1.0, 1e-4], ids=["sampled", "near-greedy"])
def test_generation_flags_sample_the_same_completions(
    tiny_varied_model_dir, synth_dir, tmp_path, flags, temperature
):
    completions = {}
    for name, fields in {
        "off": {"prefill_once": False, "fast_decode": False},
        "on": GENERATION_FLAGS[flags],
    }.items():
        trainer = objective.build(
            tiny_varied_model_dir, synth_dir, tmp_path / name, DifficultyAwareGRPOTrainer,
            temperature=temperature, **fields,
        )  # fmt: skip
        prompt_ids, images, fields = generation_batch(trainer)
        torch.manual_seed(3)
        completions[name], _ = trainer._generate_single_turn(
            prompt_ids, images, fields, objective.NUM_GENERATIONS
        )
        assert "generate" not in vars(trainer.model)  # the wrappers are gone after generation
    assert completions["on"] == completions["off"]
    assert len({tuple(c) for c in completions["off"]}) >= 2  # they differ (by prompt): the check can fail


@pytest.mark.parametrize("blockwise", [True, False], ids=["blockwise", "dense-mask"])
@pytest.mark.parametrize(
    "fields",
    [{}, {"freeze_vision_tower": False, "freeze_merger": False}, {"attn_implementation": "eager"}],
    ids=["frozen-vision", "training-vision", "eager"],
)
def test_packed_log_probs_equal_trls_per_row_forward(
    tiny_varied_model_dir, synth_dir, tmp_path, monkeypatch, fields, blockwise
):
    attended = []
    original_attend = PrefixLayout.attend
    monkeypatch.setattr(
        PrefixLayout, "attend", lambda self, *args: attended.append(1) or original_attend(self, *args)
    )
    trainer = objective.build(tiny_varied_model_dir, synth_dir, tmp_path, prefix_blocks=blockwise, **fields)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    batch = next(iter(trainer.get_train_dataloader()))
    out = trainer._generate_and_score_completions(batch)
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    width = out["completion_ids"].size(1)
    images = {k: out[k] for k in ("pixel_values", "image_grid_thw", "num_images", "mm_token_type_ids")}
    attended.clear()  # the passes of generation and scoring
    ours = trainer._get_per_token_logps_and_entropies(
        trainer.model, ids, mask, width, compute_entropy=True, **images
    )
    layers = trainer.model.config.get_text_config().num_hidden_layers
    assert len(attended) == (layers if blockwise else 0)  # each text layer attends through the layout
    stock = GRPOTrainer._get_per_token_logps_and_entropies(
        trainer, trainer.model, ids, mask, width, compute_entropy=True, **images
    )
    real = out["completion_mask"].bool()
    torch.testing.assert_close(ours[0][real], stock[0][real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[1][real], stock[1][real], rtol=1e-5, atol=1e-5)
    assert (ours[0][~real] == 0).all() and (stock[0][~real] == 0).all()
    rows = split_row_images(len(ids), out["pixel_values"], out["image_grid_thw"], out["num_images"])
    groups = PromptGroups.find(out["prompt_ids"], out["prompt_mask"], rows)
    assert len(groups.representatives) == len(ids) // objective.NUM_GENERATIONS  # the rows really share


@settings(max_examples=30, deadline=None)
@given(
    prompt=st.integers(1, 6),
    capacity=st.integers(0, 12),
    steps=st.lists(st.integers(1, 3), min_size=1, max_size=8),
    crop=st.integers(-4, 0),
    repeats=st.integers(1, 3),
)
def test_a_preallocated_cache_layer_holds_what_a_dynamic_one_holds(prompt, capacity, steps, crop, repeats):
    """Writes in place, grows past its capacity, crops and repeats rows exactly as DynamicLayer."""
    generator = torch.Generator().manual_seed(prompt * 100 + capacity)

    def states(length: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (2, 3, length, 4)
        return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)

    keys, values = states(prompt)
    ours, theirs = PreallocatedLayer(keys, values, capacity), DynamicLayer()
    theirs.update(keys, values)
    for length in steps:
        new = states(length)
        for got, want in zip(ours.update(*new), theirs.update(*new), strict=True):
            assert torch.equal(got, want)
    ours.crop(crop)
    theirs.crop(crop)
    ours.batch_repeat_interleave(repeats)
    theirs.batch_repeat_interleave(repeats)
    assert ours.get_seq_length() == theirs.get_seq_length()
    assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)


@st.composite
def packed_layouts(draw):
    """Packed rows as `pack_groups` lays them out: a prompt, then each completion (the prompt's last token's
    copy and its tokens), then padding to the longest row."""
    groups = draw(
        st.lists(
            st.tuples(st.integers(0, 6), st.lists(st.integers(0, 5), min_size=1, max_size=4)),
            min_size=1,
            max_size=3,
        )
    )
    length = max(prefix + sum(1 + count for count in counts) for prefix, counts in groups)
    segment_of = torch.full((len(groups), length), -2)
    spans, row = [], 0
    for group, (prefix, counts) in enumerate(groups):
        segment_of[group, :prefix] = -1
        start = prefix
        for count in counts:
            segment_of[group, start : start + 1 + count] = row
            spans.append((group, start, 1 + count))
            start, row = start + 1 + count, row + 1
    return segment_of, PrefixLayout.build([prefix for prefix, _ in groups], spans, torch.device("cpu"))


@settings(max_examples=60, deadline=None)
@given(layout=packed_layouts(), kv_heads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_prefix_blocks_attend_as_the_dense_block_mask(layout, kv_heads, seed):
    segment_of, prefix_layout = layout
    generator = torch.Generator().manual_seed(seed)
    groups, length = segment_of.shape
    query = torch.randn(groups, 4, length, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    key = torch.randn(
        groups, kv_heads, length, 8, generator=generator, dtype=torch.float64, requires_grad=True
    )
    value = torch.randn(
        groups, kv_heads, length, 8, generator=generator, dtype=torch.float64, requires_grad=True
    )
    weights = torch.randn(groups, length, 4, 8, generator=generator, dtype=torch.float64)
    real = (segment_of != -2)[:, :, None, None]  # no token reads padding: its outputs may differ

    def loss_and_grads(out):
        loss = (out * weights * real).sum()
        return [loss, *torch.autograd.grad(loss, (query, key, value))]

    blocks = prefix_layout.attend(query, key, value, 0.35, 0.0)
    dense = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=block_mask(segment_of), scale=0.35, enable_gqa=kv_heads != 4
    ).transpose(1, 2)
    torch.testing.assert_close(blocks * real, dense * real)
    for ours, reference in zip(loss_and_grads(blocks), loss_and_grads(dense), strict=True):
        torch.testing.assert_close(ours, reference)


def test_prefix_blocks_gradients_are_bitwise_repeatable_across_threads():
    """Two groups' completions interleaved, as TRL's shuffled rows lay them: gathers whose backward adds
    atomically across threads made each backward differ in the last bits (and two GRPO runs diverge)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        prefixes, counts = [60, 53], [45, 30, 47, 21, 40, 44, 12, 47] * 2
        groups = [index % 2 for index in range(len(counts))]
        starts, spans = list(prefixes), []
        for group, count in zip(groups, counts, strict=True):
            spans.append((group, starts[group], 1 + count))
            starts[group] += 1 + count
        layout = PrefixLayout.build(prefixes, spans, torch.device("cpu"))
        generator = torch.Generator().manual_seed(0)
        length = max(starts)
        query = torch.randn(2, 4, length, 32, generator=generator, requires_grad=True)
        key = torch.randn(2, 2, length, 32, generator=generator, requires_grad=True)
        value = torch.randn(2, 2, length, 32, generator=generator, requires_grad=True)
        weights = torch.randn(2, length, 4, 32, generator=generator)

        def grads():
            out = layout.attend(query, key, value, 0.2, 0.0)
            return torch.autograd.grad((out * weights).sum(), (query, key, value))

        first = grads()
        for _ in range(10):
            assert all(torch.equal(a, b) for a, b in zip(first, grads(), strict=True))
    finally:
        torch.set_num_threads(threads)
