"""Training data for both stages: mixing JSONL sources by ratio, and rows in the shape TRL expects.

Both trainers read canonical JSONL (what `univg data convert` and `univg data synth` write). Images stay
paths in the dataset and are decoded when a row is read, so a 7k-sample RL set never sits in memory.
GRPO reads one prompt per sample; SFT reads whole conversations (`messages`), so the turns that a
converter split out of one dialogue train together, in order.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import datasets

from univg.core.boxes import CoordSystem
from univg.core.errors import UsageError
from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.data.files import check_input
from univg.data.hf import RowOptions, features, to_hf_dataset
from univg.data.images import target_resized_size
from univg.data.prompts import PromptStyle, sample_messages
from univg.data.schema import GroundingSample, SampleError, is_rejected, read_records, resolve_image

T = TypeVar("T")
logger = logging.getLogger(__name__)
Conversation = list[GroundingSample]  # the turns of one dialogue over the same images, in order


@dataclass
class TrainingDataArguments:
    """Data fields shared by the SFT and GRPO configs."""

    train_files: list[str] = field(
        default_factory=list, metadata={"help": "canonical JSONL files (image paths relative to each file)"}
    )
    train_ratios: list[float] | None = field(
        default=None,
        metadata={"help": "per file: the share of its samples to use (1 = all, 0.5 = half, 2 = twice)"},
    )
    image_root: str | None = field(
        default=None, metadata={"help": "folder that relative image paths start from (default: the JSONL's)"}
    )
    min_pixels: int = field(
        default=DEFAULT_MIN_PIXELS, metadata={"help": "smallest image area after resizing"}
    )
    max_pixels: int = field(
        default=DEFAULT_MAX_PIXELS, metadata={"help": "largest image area after resizing"}
    )
    prompt_style: str = field(default=PromptStyle.UNIVG.value, metadata={"help": "univg (CoT) or plain"})
    coords: str = field(
        default=CoordSystem.QWEN2VL.value, metadata={"help": "how the model writes boxes: qwen2vl or pixels"}
    )
    answer_box_tags: bool | None = field(
        default=None,
        metadata={
            "help": "SFT answers: the box in Qwen2-VL's <|box_start|>...<|box_end|> tags (default: in plain "
            "answers, as Qwen2-VL answers; not in UniVG answers, the paper's format, which only the "
            "format_loose reward accepts with tags; GRPO writes no answers)"
        },
    )
    answer_names_target: bool = field(
        default=False,
        metadata={
            "help": "plain SFT answers name the target before its box, Qwen2-VL's grounded form "
            "<|object_ref_start|>PHRASE<|object_ref_end|>BOX (needs extra.phrase: synthetic data)"
        },
    )
    simple_reference_chains: bool = field(
        default=True,
        metadata={
            "help": "SFT answers of simple-reference items (RefCOCO-like, prompted without the CoT suffix) "
            "keep their chains; false trains them on <answer>BOX</answer> alone, as their prompt asks"
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "cap after mixing (for smoke runs)"}
    )
    data_seed_mix: int = field(default=0, metadata={"help": "seed of the mixing and shuffling"})


def mix_sources(sources: Sequence[Sequence[T]], ratios: Sequence[float] | None, seed: int) -> list[T]:
    """Take `ratio * len(source)` items from each source (repeating whole passes when ratio > 1), shuffled."""
    if ratios is None:
        ratios = [1.0] * len(sources)
    if len(ratios) != len(sources):
        raise ValueError(f"got {len(ratios)} ratios for {len(sources)} training files")
    rng = random.Random(seed)
    mixed: list[T] = []
    for source, ratio in zip(sources, ratios, strict=True):
        if ratio < 0:
            raise ValueError(f"mixing ratios must be >= 0, got {ratio}")
        wanted = round(ratio * len(source))
        full_passes, remainder = divmod(wanted, len(source)) if source else (0, 0)
        for _ in range(full_passes):
            mixed.extend(source)
        mixed.extend(rng.sample(list(source), remainder))
    rng.shuffle(mixed)
    return mixed


def read_training_sources(
    args: TrainingDataArguments, *, skip_rejected: bool = False
) -> list[list[GroundingSample]]:
    """Read and check the configured JSONL files, one list per file; image paths become absolute.

    With `skip_rejected` (SFT), lines that `univg cot generate` rejected are left out: their chain
    failed verification, so a CoT file trains on its verified lines only.
    """
    if not args.train_files:
        raise UsageError(
            "no training data", option="train_files", hint="set {option} to one or more canonical JSONL files"
        )
    sources = []
    for path in args.train_files:
        root = Path(args.image_root) if args.image_root else Path(path).parent
        samples = []
        skipped = 0
        for line_number, record in read_records(check_input(path, option="train_files")):
            if skip_rejected and is_rejected(record):
                skipped += 1
                continue
            where = f"line {line_number}"
            sample = GroundingSample.from_json(record, path=str(path), index=where)
            problem = sample.problem()
            if problem is not None:
                raise SampleError(
                    f"{problem[1]} (sample {sample.id})", path=path, record=where, field_name=problem[0]
                )
            sample.images = [str(resolve_image(p, root)) for p in sample.images]
            samples.append(sample)
        if skipped:
            logger.info("%s: left out %d lines rejected by univg cot generate", path, skipped)
        sources.append(samples)
    return sources


def load_training_samples(args: TrainingDataArguments) -> list[GroundingSample]:
    """Read, check and mix the configured JSONL files; image paths become absolute."""
    mixed = mix_sources(read_training_sources(args), args.train_ratios, args.data_seed_mix)
    return mixed[: args.max_train_samples] if args.max_train_samples is not None else mixed


def _turn_key(sample: GroundingSample) -> tuple[str, str, tuple[str, ...]] | None:
    """(source, record, images) shared by the turns of one converted dialogue, or None for a lone sample.

    Converters write one sample per question-answer pair with id ``"{record}-{turn}"`` and
    ``extra["turn"]``; anything else is a conversation of its own.
    """
    turn = sample.extra.get("turn")
    if not isinstance(turn, int) or isinstance(turn, bool):
        return None
    record, dash, number = sample.id.rpartition("-")
    if not dash or number != str(turn):
        return None
    return sample.source, record, tuple(sample.images)


def group_turns(samples: Sequence[GroundingSample]) -> list[Conversation]:
    """The samples of one file as conversations: split dialogues back together in turn order.

    A conversation sits where its first turn was; lone samples are conversations of one turn.
    """
    conversations: list[Conversation] = []
    by_key: dict[tuple[str, str, tuple[str, ...]], Conversation] = {}
    for sample in samples:
        key = _turn_key(sample)
        if key is None:
            conversations.append([sample])
        elif key in by_key:
            by_key[key].append(sample)
        else:
            by_key[key] = [sample]
            conversations.append(by_key[key])
    for turns in by_key.values():
        turns.sort(key=lambda s: s.extra["turn"])
        numbers = [s.extra["turn"] for s in turns]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"conversation {turns[0].id}: turn numbers repeat: {numbers}")
    return conversations


def load_training_conversations(
    args: TrainingDataArguments, *, multi_turn: bool = True
) -> list[Conversation]:
    """Read, group and mix the configured files; ratios and `max_train_samples` count conversations.

    Without `multi_turn` every sample is a conversation of one turn.
    """
    sources = [
        group_turns(samples) if multi_turn else [[s] for s in samples]
        for samples in read_training_sources(args, skip_rejected=True)
    ]
    mixed = mix_sources(sources, args.train_ratios, args.data_seed_mix)
    return mixed[: args.max_train_samples] if args.max_train_samples is not None else mixed


def conversation_messages(turns: Conversation, args: TrainingDataArguments) -> list[dict[str, Any]]:
    """The chat of a conversation: every image in the first user turn, then each question and answer.

    Each turn comes from the one prompt builder; later turns drop their image placeholders, since the
    images of a dialogue are shown once, at its start. Pixel boxes (Qwen2.5-VL) refer to the resized
    target image, whose size comes from the conversion record or else from the image header.
    """
    pixels = CoordSystem.parse(args.coords) is CoordSystem.PIXELS
    messages: list[dict[str, Any]] = []
    for number, sample in enumerate(turns):
        size = (
            target_resized_size(sample, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
            if pixels
            else None
        )
        user, assistant = sample_messages(
            sample,
            style=args.prompt_style,
            coords=args.coords,
            size=size,
            with_answer=True,
            box_tags=args.answer_box_tags,
            name_target=args.answer_names_target,
            simple_reference_chains=args.simple_reference_chains,
            min_pixels=args.min_pixels,
            max_pixels=args.max_pixels,
        )
        if number:
            user = {**user, "content": [part for part in user["content"] if part["type"] != "image"]}
        messages += [user, assistant]
    return messages


def sft_dataset(conversations: Sequence[Conversation], args: TrainingDataArguments) -> datasets.Dataset:
    """Rows for TRL's SFTTrainer: ``messages`` (the whole chat) and lazily decoded ``images``.

    ``id`` (the first turn's), ``task``, ``source`` and ``num_turns`` come along for reports; TRL's
    collator reads only ``messages`` and ``images``.
    """
    base = features(with_answer=True)
    schema = datasets.Features(
        {
            "id": base["id"],
            "task": base["task"],
            "source": base["source"],
            "num_turns": datasets.Value("int64"),
            "images": base["images"],
            "messages": base["prompt"],
        }
    )
    rows = [
        {
            "id": turns[0].id,
            "task": turns[0].task,
            "source": turns[0].source,
            "num_turns": len(turns),
            "images": list(turns[0].images),
            "messages": conversation_messages(turns, args),
        }
        for turns in conversations
    ]
    return datasets.Dataset.from_list(rows, features=schema)


def trl_dataset(
    samples: Sequence[GroundingSample], args: TrainingDataArguments, *, with_answer: bool
) -> datasets.Dataset:
    """Rows for TRL's trainers: `prompt` (+ `completion` for SFT), lazily decoded `images`, reward columns.

    Pixel-coordinate models (Qwen2.5-VL) also get `image_size`, the resized target size their boxes
    refer to, so the accuracy reward can read their answers.
    """
    options = RowOptions(
        with_answer=with_answer,
        style=args.prompt_style,
        coords=args.coords,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
    )
    dataset = to_hf_dataset(samples, options)
    dataset = dataset.add_column("coords", [args.coords] * len(samples))
    if CoordSystem.parse(args.coords) is CoordSystem.PIXELS:
        sizes = [
            list(target_resized_size(s, min_pixels=args.min_pixels, max_pixels=args.max_pixels))
            for s in samples
        ]
        dataset = dataset.add_column("image_size", sizes)
    return dataset
