"""Writing a synthetic data set: PNG images and canonical JSONL, a training and a held-out split.

Every sample draws from its own `random.Random` seeded by (seed, split, index), so a seed fixes every
byte written, whatever else runs. The evaluation split is drawn from other seeds, and any evaluation
sample that repeats a training scene or image is redrawn, so the two splits share no scene.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from univg.data.schema import GroundingSample, write_jsonl
from univg.data.synthetic.levels import DIFFICULTIES, pick_level
from univg.data.synthetic.preview import contact_sheet
from univg.data.synthetic.problem import SceneImage
from univg.data.synthetic.render import render_problem
from univg.data.synthetic.tasks import DEFAULT_TASKS, TASKS, make_problem
from univg.data.synthetic.teacher import chain, wrong_chains

SOURCE = "synthetic"
SPLITS = ("train", "eval")
MIN_IMAGE_SIZE = 56
PREVIEW_ROWS = 4
REDRAWS = 20
WORKER_MINIMUM = 256  # fewer samples are drawn in this process: starting workers costs about a second


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. `n_eval` defaults to a fifth of `n`, at least one sample per task."""

    n: int = 1000
    n_eval: int | None = None
    seed: int = 0
    tasks: tuple[str, ...] = DEFAULT_TASKS
    difficulty: str = "mixed"
    image_size: int = 112
    wrong_chains: int = 0
    preview: bool = False

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"unknown or no tasks {unknown or list(self.tasks)}; expected some of {TASKS}")
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown difficulty {self.difficulty!r}; expected one of {DIFFICULTIES}")
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image size must be at least {MIN_IMAGE_SIZE} pixels, got {self.image_size}")
        if self.n < 0 or (self.n_eval is not None and self.n_eval < 0) or self.wrong_chains < 0:
            raise ValueError("sample and chain counts must be >= 0")

    def count(self, split: str) -> int:
        if split == "train":
            return self.n
        return self.n_eval if self.n_eval is not None else max(len(self.tasks), self.n // 5)


@dataclass
class Synthesized:
    """One generated sample with its images in memory (paths in `sample.images` are where they go)."""

    sample: GroundingSample
    images: list[Image.Image]
    scene_keys: list[str]  # one digest per scene drawn, to keep the splits apart


@dataclass
class SynthSummary:
    out_dir: Path
    files: dict[str, Path]
    counts: dict[str, dict[str, int]]  # split -> task -> samples
    levels: dict[str, dict[str, int]]  # split -> difficulty -> samples
    previews: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:16]


def synthesize(config: SynthConfig, split: str, index: int, attempt: int = 0) -> Synthesized:
    """Sample `index` of `split`, drawn from its own seed (`attempt` > 0 redraws it)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = random.Random(f"univg-synth/{config.seed}/{split}/{index}/{attempt}")
    task = config.tasks[index % len(config.tasks)]
    level = pick_level(config.difficulty, rng)
    problem = make_problem(task, rng, level)
    rendered = render_problem(problem, config.image_size)
    extra: dict[str, object] = {
        "difficulty": level.name,
        "scene": _digest(repr(problem.images)),
        "target": asdict(problem.target_object().look),
        "phrase": problem.phrase,
        "distractors": rendered.distractors,
    }
    if problem.variant:
        extra["variant"] = problem.variant
    if config.wrong_chains:
        wrong = wrong_chains(problem, rendered, rng, config.wrong_chains)
        extra["wrong_chains"] = [w.to_json() for w in wrong]
    sample = GroundingSample(
        id=f"synth-{split}-{index:06d}",
        task=task,
        source=SOURCE,
        images=[f"images/{split}/{index:06d}-{k}.png" for k in range(len(rendered.images))],
        question=rendered.question,
        target_image=problem.target_image,
        box=rendered.box,
        cot=chain(problem, rendered),
        extra=extra,
    )
    keys = [_digest(repr(spec.scene)) for spec in problem.images if isinstance(spec, SceneImage)]
    return Synthesized(sample, rendered.images, keys)


def png_bytes(image: Image.Image) -> bytes:
    """PNG encoding with fixed options: the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _drawn(
    config: SynthConfig, split: str, index: int, banned: set[str]
) -> tuple[GroundingSample, list[bytes], set[str]]:
    """Sample `index` of `split` with its encoded images and scene and image digests.

    A sample whose digests meet `banned` (the training split's) is redrawn.
    """
    for attempt in range(REDRAWS):
        made = synthesize(config, split, index, attempt)
        encoded = [png_bytes(image) for image in made.images]
        keys = {*made.scene_keys, *(_digest(data) for data in encoded)}
        if not keys & banned:
            return made.sample, encoded, keys
    raise RuntimeError(f"{split} sample {index} kept repeating training scenes")


_WORKER: dict[str, Any] = {}


def _init_worker(config: SynthConfig, split: str, banned: set[str]) -> None:
    _WORKER.update(config=config, split=split, banned=banned)


def _drawn_in_worker(index: int) -> tuple[GroundingSample, list[bytes], set[str]]:
    return _drawn(_WORKER["config"], _WORKER["split"], index, _WORKER["banned"])


def _split(
    config: SynthConfig, split: str, banned: set[str], workers: int
) -> Iterator[tuple[GroundingSample, list[bytes], set[str]]]:
    """The samples of a split in order, drawn by `workers` processes (every sample has its own seed,
    so the bytes do not depend on how many)."""
    indices = range(config.count(split))
    if workers <= 1 or len(indices) < WORKER_MINIMUM:
        for index in indices:
            yield _drawn(config, split, index, banned)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(config, split, banned)) as pool:
        yield from pool.imap(_drawn_in_worker, indices, chunksize=64)


def generate_dataset(
    out_dir: str | Path, config: SynthConfig | None = None, *, workers: int = 1
) -> SynthSummary:
    """Write `out_dir/{train,eval}.jsonl`, their images under `out_dir/images/`, and a manifest.

    With `config.preview`, also one contact sheet per task under `out_dir/preview/`. `workers` processes
    draw the samples (about 10 ms of CPU each); the output is the same for any number.
    """
    config = config or SynthConfig()
    started = time.perf_counter()
    root = Path(out_dir)
    training_keys: set[str] = set()
    summary = SynthSummary(out_dir=root, files={}, counts={}, levels={})
    shown: dict[str, list[tuple[GroundingSample, list[Image.Image]]]] = {}
    for split in SPLITS:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        samples = []
        banned = training_keys if split == "eval" else set()
        for sample, encoded, keys in _split(config, split, banned, workers):
            for path, data in zip(sample.images, encoded, strict=True):
                (root / path).write_bytes(data)
            if split == "train":
                training_keys |= keys
            if split == "train" and config.preview:
                rows = shown.setdefault(sample.task, [])
                if len(rows) < PREVIEW_ROWS:
                    rows.append((sample, [Image.open(io.BytesIO(data)) for data in encoded]))
            samples.append(sample)
        summary.files[split] = root / f"{split}.jsonl"
        write_jsonl(samples, summary.files[split])
        summary.counts[split] = dict(Counter(s.task for s in samples))
        summary.levels[split] = dict(Counter(str(s.extra["difficulty"]) for s in samples))
    for task, rows in shown.items():
        path = root / "preview" / f"{task}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(rows).save(path, format="PNG")
        summary.previews.append(path)
    manifest = {"config": asdict(config), "counts": summary.counts}
    (root / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    summary.seconds = time.perf_counter() - started
    return summary
