"""univg's decoding loop against transformers' `generate`: the same tokens and the same scores, on tiny
Qwen2-VL / Qwen2.5-VL models whose answers depend on the prompt (std 0.1 weights), with images, left
padding, the logits processors TRL uses, LoRA layers, and the hand-over of what the loop does not cover."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, LogitsProcessor, LogitsProcessorList

from univg.models.fast_decode import fast_decode_unsupported, fast_decoding, fast_sample, fast_sample_applies
from univg.models.processor import load_processor
from univg.models.tiny import TinySpec, build_tiny_model

NEW_TOKENS = 24


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def model_and_inputs(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("fast-decode") / request.param
    path = build_tiny_model(out, family=request.param, spec=TinySpec(initializer_range=0.1), seed=0)
    processor = load_processor(str(path), max_pixels=12544)
    processor.tokenizer.padding_side = "left"
    rng = np.random.default_rng(0)
    image = lambda w, h: Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))  # noqa: E731
    chats = [  # two images; one image and a longer question (left padding); no image
        ([image(112, 112), image(84, 112)], "Which image holds the red circle?"),
        ([image(112, 84)], "Find the striped green triangle at the top left of the picture, please."),
        ([], "Name a shape."),
    ]
    texts = [
        processor.apply_chat_template(
            [
                {
                    "role": "user",
                    "content": [*({"type": "image"} for _ in images), {"type": "text", "text": q}],
                }
            ],
            add_generation_prompt=True,
        )
        for images, q in chats
    ]
    inputs = processor(
        text=texts, images=[im for images, _ in chats for im in images], return_tensors="pt", padding=True
    )
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    return model, dict(inputs), processor


class Record(LogitsProcessor):
    """Keeps the scores each step hands to the processors (the model's logits, in float32)."""

    def __init__(self) -> None:
        self.scores: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        self.scores.append(scores.clone())
        return scores


def generate(model, inputs, fast: bool, seed: int = 7, **settings):
    record = Record()
    torch.manual_seed(seed)
    sequences = model.generate(
        **inputs,
        max_new_tokens=NEW_TOKENS,
        logits_processor=LogitsProcessorList([record]),
        custom_generate=fast_sample if fast else None,
        **settings,
    )
    return sequences, torch.stack(record.scores, 1)


SETTINGS = {
    "greedy": {"do_sample": False},
    "sampled": {"do_sample": True, "temperature": 1.0, "top_k": 0},
    "trl-like": {"do_sample": True, "temperature": 0.9, "top_k": 50, "top_p": 0.95, "suppress_tokens": [5]},
    "penalised": {"do_sample": True, "top_k": 0, "repetition_penalty": 1.3, "min_new_tokens": 10},
}


@pytest.mark.parametrize("name", SETTINGS)
def test_the_loop_gives_the_tokens_and_scores_of_generate(model_and_inputs, name):
    model, inputs, _ = model_and_inputs
    expected, expected_scores = generate(model, inputs, fast=False, **SETTINGS[name])
    got, scores = generate(model, inputs, fast=True, **SETTINGS[name])
    assert torch.equal(got, expected)
    torch.testing.assert_close(scores, expected_scores, rtol=1e-5, atol=1e-5)
    completions = expected[:, inputs["input_ids"].size(1) :]
    assert len({tuple(row.tolist()) for row in completions}) == len(
        completions
    )  # answers depend on the prompt


def test_unfused_projections_decode_as_fused_ones(model_and_inputs, monkeypatch):
    """A model whose weights are too large to copy for fusing runs each projection module on its own."""
    from univg.models import fast_decode

    model, inputs, _ = model_and_inputs
    fused, fused_scores = generate(model, inputs, fast=True, do_sample=True, top_k=0)
    monkeypatch.setattr(fast_decode, "FUSED_COPY_LIMIT", 0)
    calls = []
    handle = model.model.language_model.layers[0].self_attn.k_proj.register_forward_hook(
        lambda *_: calls.append(1)
    )
    try:
        unfused, unfused_scores = generate(model, inputs, fast=True, do_sample=True, top_k=0)
    finally:
        handle.remove()
    assert len(calls) == NEW_TOKENS  # the prefill's call and one per decoding step after the first token
    assert torch.equal(unfused, fused)
    torch.testing.assert_close(unfused_scores, fused_scores, rtol=1e-5, atol=1e-5)


def test_hooked_modules_are_called_as_modules(model_and_inputs):
    """Plain layers run as bare functions on their weights; a layer with a hook (accelerate's offloading,
    a user's probe) must still be called, every step."""
    model, inputs, _ = model_and_inputs
    plain, plain_scores = generate(model, inputs, fast=True, do_sample=True, top_k=0)
    layer = model.model.language_model.layers[-1]
    hooked = {"o_proj": layer.self_attn.o_proj, "down_proj": layer.mlp.down_proj, "lm_head": model.lm_head}
    hooked["q_proj"] = layer.self_attn.q_proj  # one of a fused group: the group runs module by module
    calls = {name: 0 for name in hooked}

    def count(name):
        def hook(*_):
            calls[name] += 1

        return hook

    handles = [module.register_forward_hook(count(name)) for name, module in hooked.items()]
    try:
        probed, probed_scores = generate(model, inputs, fast=True, do_sample=True, top_k=0)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == dict.fromkeys(hooked, NEW_TOKENS)  # the prefill's call and one per decoding step after it
    assert torch.equal(probed, plain)
    torch.testing.assert_close(probed_scores, plain_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
def test_rows_that_end_leave_the_batch_and_are_padded_as_in_generate(model_and_inputs, sampled):
    """An end token row 0 writes early: the loop stops running it, its later tokens are padding, and the
    other rows (sampled: the same random stream) go on exactly as in `generate`."""
    model, inputs, _ = model_and_inputs
    settings = {"do_sample": sampled, "top_k": 0, "pad_token_id": 0}
    free, _ = generate(model, inputs, fast=False, **settings)
    start = inputs["input_ids"].size(1)
    end = free[0, start + 2].item()  # the third token row 0 writes
    assert end not in free[1:, start : start + 3].tolist()  # the other rows go on after it
    expected, _ = generate(model, inputs, fast=False, eos_token_id=end, **settings)
    rows = []
    handle = model.model.language_model.embed_tokens.register_forward_hook(
        lambda m, a, out: rows.append(len(out))
    )
    try:
        got, _ = generate(model, inputs, fast=True, eos_token_id=end, **settings)
    finally:
        handle.remove()
    assert torch.equal(got, expected)
    assert (got[0, start + 3 :] == 0).all()
    assert min(rows) < len(got)  # the finished row left the batch


def test_the_loop_runs_the_language_model_once_per_generation(model_and_inputs):
    """The prefill is transformers' forward; every decoding step is the loop's (else it saves nothing)."""
    model, inputs, _ = model_and_inputs
    calls = []
    handle = model.model.language_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        generate(model, inputs, fast=True, do_sample=False)
        fast_calls = len(calls)
        generate(model, inputs, fast=False, do_sample=False)
    finally:
        handle.remove()
    assert fast_calls == 1
    assert len(calls) - fast_calls == NEW_TOKENS


def test_lora_layers_decode_as_in_generate(model_and_inputs):
    """The loop calls each projection module as it is, so a LoRA adapter's update is in its logits."""
    from peft import LoraConfig, get_peft_model

    model, inputs, _ = model_and_inputs
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False
    )
    adapted = get_peft_model(copy.deepcopy(model), config).base_model.model
    expected, expected_scores = generate(adapted, inputs, fast=False, do_sample=True, top_k=0)
    got, scores = generate(adapted, inputs, fast=True, do_sample=True, top_k=0)
    assert torch.equal(got, expected)
    torch.testing.assert_close(scores, expected_scores, rtol=1e-5, atol=1e-5)
    _, base_scores = generate(model, inputs, fast=True, do_sample=True, top_k=0)
    assert not torch.allclose(scores[:, 0], base_scores[:, 0], atol=1e-3)  # the adapter changes the answer


def test_what_the_loop_does_not_cover_goes_to_the_loop_of_generate(model_and_inputs):
    model, inputs, _ = model_and_inputs
    torch.manual_seed(1)
    expected = model.generate(**inputs, max_new_tokens=8, do_sample=False, return_dict_in_generate=True)
    torch.manual_seed(1)
    got = model.generate(
        **inputs, max_new_tokens=8, do_sample=False, return_dict_in_generate=True, custom_generate=fast_sample
    )
    assert torch.equal(got.sequences, expected.sequences)


def test_the_context_leaves_beam_search_and_restores_generate(model_and_inputs):
    model, inputs, _ = model_and_inputs
    expected = model.generate(**inputs, max_new_tokens=6, num_beams=2, do_sample=False)
    with fast_decoding(model):
        assert "generate" in vars(model)
        got = model.generate(**inputs, max_new_tokens=6, num_beams=2, do_sample=False)
    assert "generate" not in vars(model)
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: setattr(c, "model_type", "llava"), "model type 'llava'"),
        (lambda c: setattr(c.get_text_config(), "use_sliding_window", True), "sliding-window"),
        (lambda c: c.get_text_config().rope_parameters.update(rope_type="yarn"), "RoPE scaling"),
        (lambda c: setattr(c, "_attn_implementation", "flash_attention_2"), "flash_attention_2"),
    ],
    ids=["model-type", "sliding-window", "rope-scaling", "flash-attention"],
)
def test_unsupported_models_are_named_with_their_reason(tmp_path, change, reason):
    path = build_tiny_model(tmp_path / "m", seed=0)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert fast_decode_unsupported(model) is None
    change(model.config)
    assert reason in (fast_decode_unsupported(model) or "")


def test_a_forward_wrapped_in_autocast_decodes_in_it_too(model_and_inputs):
    """accelerate wraps `forward` in autocast under mixed precision; the loop's steps bypass `forward`,
    so they must run in the autocast state the prefill ran in (else keys and values differ in dtype)."""
    model, inputs, _ = model_and_inputs
    wrapped = copy.deepcopy(model)
    forward = wrapped.forward

    @functools.wraps(forward)
    def autocast_forward(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(*args, **kwargs)

    wrapped.forward = autocast_forward
    expected, expected_scores = generate(wrapped, inputs, fast=False, do_sample=False)
    got, scores = generate(wrapped, inputs, fast=True, do_sample=False)
    _, float_scores = generate(model, inputs, fast=True, do_sample=False)
    torch.testing.assert_close(scores[:, 0], expected_scores[:, 0], rtol=0.05, atol=0.05)
    assert not torch.allclose(scores[:, 0], float_scores[:, 0], atol=1e-4)  # it did decode in bfloat16
    assert (got == expected).float().mean() > 0.9


@pytest.mark.parametrize(
    ("kwargs", "applies"),
    [
        ({"do_sample": False}, True),
        ({"do_sample": True, "top_p": 0.9}, True),
        ({"num_beams": 2}, False),  # beam search: generate's own
        ({"streamer": object()}, False),  # transformers does not pass a streamer to a custom_generate
        ({"synced_gpus": True}, False),  # nor synced_gpus: the ranks' forwards must stay in step
        ({"custom_generate": lambda *a, **k: None}, False),  # the caller's own loop
    ],
    ids=["greedy", "sampled", "beams", "streamer", "synced-gpus", "own-loop"],
)
def test_the_loop_applies_only_where_it_can_give_the_answer_of_generate(model_and_inputs, kwargs, applies):
    model, _, _ = model_and_inputs
    assert fast_sample_applies(model, kwargs) is applies
