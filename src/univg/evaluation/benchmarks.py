"""The benchmark registry: a benchmark is a reader, a task list and a few small hooks.

Readers live in `univg.data.formats` and are reached through `univg.data.convert.read_samples`; a
benchmark adds only what evaluation needs on top: the key each sample is reported under (MIG-Bench's
task, RefCOCO's split), where splits come from, which frame video benchmarks score, the prompt style
the paper used, and where images live by default. `load_benchmark` turns a data file into the
samples to score plus the records that cannot be scored, each with its reason.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from univg.core.errors import UnivgError, UsageError
from univg.data.convert import Report, read_samples
from univg.data.files import check_input
from univg.data.formats import get_format
from univg.data.formats.base import MISSING_IMAGE, UNREADABLE_IMAGE, RecordProblem
from univg.data.images import VIDEO_TARGET_FRAME
from univg.data.jsonstream import JsonRecords
from univg.data.prompts import PromptStyle
from univg.data.schema import GroundingSample

_IMAGE_PROBLEMS = frozenset({MISSING_IMAGE, UNREADABLE_IMAGE})


class BenchmarkError(UnivgError, ValueError):
    """A data file that cannot be this benchmark: the message names the file and what is wrong."""


TaskKey = Callable[[GroundingSample, "str | None"], str]


def _sample_task(sample: GroundingSample, _split: str | None) -> str:
    return sample.task


def _split_task(sample: GroundingSample, split: str | None) -> str:
    if split is None:
        raise UsageError(
            "this benchmark reports by split, and no split is known", option="split", hint="pass {option}"
        )
    return split


def _data_dir(path: Path) -> Path:
    return path.parent


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of the paper (or our synthetic world) and how to evaluate it."""

    name: str
    format: str  # the reader, a name in univg.data.formats
    description: str
    tasks: tuple[str, ...]  # task keys in the paper's column order (others the data holds go after)
    task_key: TaskKey = _sample_task
    splits: tuple[str, ...] = ()  # a file holds one split, named at the end of its file name
    style: PromptStyle = PromptStyle.UNIVG
    score_frame: int | None = None  # video benchmarks: the sampled frame that is scored
    default_image_root: Callable[[Path], Path] | None = None
    ids_are_positions: bool = True  # sample ids are record positions (else records carry their own "id")
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def needs_images(self) -> bool:
        """Ground truth in pixels or frames in folders: reading the data needs the images."""
        return get_format(self.format).needs_images

    def split_of(self, path: str | os.PathLike[str], split: str | None = None) -> str | None:
        """The split a data file holds: `split` when given, else the last ``_word`` of its file name."""
        if not self.splits:
            if split is not None:
                raise UsageError(f"benchmark {self.name} has no splits", option="split", hint="drop {option}")
            return None
        if split is not None:
            return self._known_split(split, f"the split {split!r}")
        stem = Path(path).name.split(".")[0]
        return self._known_split(stem.rsplit("_", 1)[-1], f"the file name {Path(path).name!r}")

    def _known_split(self, word: str, where: str) -> str:
        for known in self.splits:
            if known.lower() == word.lower():
                return known
        raise UsageError(
            f"benchmark {self.name}: cannot tell the split from {where}",
            option="split",
            hint=f"pass {{option}} with one of {', '.join(self.splits)}",
        )

    def task_order(self, present: set[str]) -> list[str]:
        """Tasks for tables: the paper's order first, then any others the data holds, sorted."""
        ordered = [t for t in self.tasks if t in present]
        return ordered + sorted(present - set(ordered))


MIG_BENCH_TASKS = (
    "diff",
    "view_diff",
    "common_object",
    "object_tracking",
    "multi_view",
    "region",
    "refer_grounding",
    "group_grounding",
    "reasoning",
    "correspondence",
)

_REGISTRY: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "mig-bench",
            "mig-bench",
            "MIG-Bench (Migician), 10 multi-image grounding tasks; ids are positions in MIG_data.json",
            MIG_BENCH_TASKS,
            notes=("diff: both images of a pair have the same geometry, so either one is the right image",),
        ),
        *(
            Benchmark(
                name,
                "refcoco",
                f"{name} in VLM-R1's layout ({name.replace('+', 'p')}_SPLIT.json)",
                splits,
                task_key=_split_task,
                splits=splits,
                notes=("RefCOCO items are asked without the reasoning suffix, as in the official code",),
            )
            for name, splits in (
                ("refcoco", ("val", "testA", "testB")),
                ("refcoco+", ("val", "testA", "testB")),
                ("refcocog", ("val", "test")),
            )
        ),
        Benchmark(
            "lisa",
            "lisa",
            "LISA grounding, zero-shot (lisa_val.json / lisa_test.json)",
            ("val", "test"),
            task_key=_split_task,
            splits=("val", "test"),
        ),
        Benchmark("llmseg", "llmseg", "LLMSeg grounding, zero-shot (LLMSeg_eval.json)", ("llmseg",)),
        Benchmark(
            "revos",
            "revos",
            "ReVOS grounding, zero-shot: 6 sampled frames, the third is scored (ReVOS_eval.json)",
            ("revos",),
            score_frame=VIDEO_TARGET_FRAME,
        ),
        Benchmark(
            "reasonvos",
            "reasonvos",
            "ReasonVOS grounding, zero-shot: 6 sampled frames, the third is scored (ReasonVOS_eval.json)",
            ("reasonvos",),
            score_frame=VIDEO_TARGET_FRAME,
        ),
        Benchmark(
            "synthetic",
            "canonical",
            "our synthetic world's held-out split (univg data synth: DIR/eval.jsonl; images under DIR)",
            (*MIG_BENCH_TASKS, "referring", "locate"),
            default_image_root=_data_dir,
            ids_are_positions=False,
        ),
    )
}
BENCHMARK_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called `name`; the error lists the known ones."""
    if name not in _REGISTRY:
        raise UsageError(
            f"unknown {{option}} {name!r}; expected one of: {', '.join(BENCHMARK_NAMES)}", option="benchmark"
        )
    return _REGISTRY[name]


@dataclass
class BenchmarkData:
    """The samples of a data file to evaluate, and the records that cannot be evaluated.

    Records that cannot be scored are named by their sample id: the 0-based position in the file for
    every real benchmark, the record's own "id" for canonical JSONL (its position when it has none).
    """

    benchmark: Benchmark
    path: Path
    image_root: Path | None
    split: str | None
    samples: list[GroundingSample]
    task_of: dict[str, str]  # sample id -> task key
    invalid_gt: dict[str, str]  # record -> why its ground truth is unusable (excluded from scores)
    unreadable: dict[str, str]  # record -> which image is missing or unreadable (excluded too)
    all_ids: set[str]  # every valid id in the file, selected or not
    tasks_selected: tuple[str, ...] | None = None
    limit: int | None = None

    def tasks(self) -> list[str]:
        return self.benchmark.task_order(set(self.task_of.values()))

    def by_id(self) -> dict[str, GroundingSample]:
        return {s.id: s for s in self.samples}


def _own_ids(path: Path, indices: set[int]) -> dict[int, str]:
    """The "id" field of some records (by position), for formats whose records name themselves."""
    found: dict[int, str] = {}
    if not indices:
        return found
    for index, raw in JsonRecords(path):
        if index in indices and isinstance(raw, dict) and isinstance(raw.get("id"), str | int):
            found[index] = str(raw["id"])
    return found


def _describe(problems: list[RecordProblem]) -> str:
    return "; ".join(f"{p.kind}" + (f" ({p.field})" if p.field else "") + f": {p.message}" for p in problems)


def resolve_image_root(
    benchmark: Benchmark, data: str | os.PathLike[str], image_root: str | os.PathLike[str] | None
) -> Path | None:
    """The image root to read with: the one given, else the benchmark's default, else None."""
    if image_root is not None:
        return Path(image_root)
    if benchmark.default_image_root is not None:
        return benchmark.default_image_root(Path(data))
    return None


def _read(
    benchmark: Benchmark, path: Path, root: Path | None
) -> tuple[list[GroundingSample], dict[str, str], dict[str, str]]:
    """The valid samples, and why each other record cannot be scored: (samples, invalid, unreadable).

    A record whose only problems are its images is unreadable; any other problem makes its ground
    truth invalid.
    """
    report = Report(benchmark.format, str(path), images_checked=root is not None)
    samples = list(read_samples(benchmark.format, path, image_root=root, report=report))
    if report.fatal:
        raise BenchmarkError(report.fatal, path=path, option="data")
    invalid: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    names = {} if benchmark.ids_are_positions else _own_ids(path, {bad.index for bad in report.bad_records})
    for bad in report.bad_records:
        kinds = {p.kind for p in bad.problems}
        target = unreadable if kinds <= _IMAGE_PROBLEMS else invalid
        target[names.get(bad.index, str(bad.index))] = _describe(bad.problems)
    return samples, invalid, unreadable


def _check_samples(benchmark: Benchmark, path: Path, samples: list[GroundingSample]) -> None:
    """What the file must hold to be this benchmark: unique ids, its own split, the scored frame."""
    duplicates = sorted(sample_id for sample_id, count in Counter(s.id for s in samples).items() if count > 1)
    if duplicates:
        raise BenchmarkError(
            f"sample ids must be unique; repeated: {', '.join(duplicates[:10])}", path=path, field="id"
        )
    if benchmark.format == "refcoco":
        wrong = {s.task for s in samples} - {benchmark.name}
        if wrong:
            raise UsageError(
                f"holds {', '.join(sorted(wrong))} (by its file name), not {benchmark.name}",
                path=path,
                option="benchmark",
                hint=f"use {{option}} {sorted(wrong)[0]}",
            )
    if benchmark.score_frame is not None:
        off = [s.id for s in samples if s.target_image != benchmark.score_frame]
        if off:
            raise BenchmarkError(
                f"{benchmark.name} scores frame {benchmark.score_frame + 1}, but the reader targets another "
                f"frame for sample(s) {', '.join(off[:5])}"
            )


def _select(
    samples: list[GroundingSample],
    keys: dict[str, str],
    tasks: list[str] | tuple[str, ...] | None,
    limit: int | None,
    holds: str,
) -> list[GroundingSample]:
    """The samples of the given tasks (all when None), at most `limit` per task, in file order.

    `holds` names the file and its tasks for the error about a task it does not hold.
    """
    if tasks:
        unknown = sorted(set(tasks) - set(keys.values()))
        if unknown:
            raise UsageError(f"no samples of task(s) {', '.join(unknown)} in {holds}", option="tasks")
        samples = [s for s in samples if keys[s.id] in tasks]
    if limit is None:
        return samples
    taken: Counter[str] = Counter()
    kept = []
    for sample in samples:
        key = keys[sample.id]
        if taken[key] < limit:
            taken[key] += 1
            kept.append(sample)
    return kept


def load_benchmark(
    name: str,
    data: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    split: str | None = None,
    tasks: list[str] | tuple[str, ...] | None = None,
    limit: int | None = None,
) -> BenchmarkData:
    """Read a benchmark file: valid samples (optionally only some tasks, at most `limit` per task).

    Every record that cannot be scored is kept with its reason: wrong ground truth in `invalid_gt`,
    missing images in `unreadable`. Formats with pixel boxes need `image_root` to read at all.
    """
    benchmark = get_benchmark(name)
    path = Path(data)
    check_input(path, option="data")
    if limit is not None and limit < 1:
        raise UsageError(f"{{option}} must be at least 1, got {limit}", option="limit")
    root = resolve_image_root(benchmark, path, image_root)
    if benchmark.needs_images and root is None:
        raise UsageError(
            f"benchmark {name} gives boxes in pixels (or frames in folders)",
            option="image_root",
            hint="pass {option}, the folder its image paths are relative to",
        )
    split_name = benchmark.split_of(path, split)
    samples, invalid, unreadable = _read(benchmark, path, root)
    _check_samples(benchmark, path, samples)
    keys = {s.id: benchmark.task_key(s, split_name) for s in samples}
    holds = f"{path}; it holds {', '.join(benchmark.task_order(set(keys.values())))}"
    selected = _select(samples, keys, tasks, limit, holds)
    return BenchmarkData(
        benchmark=benchmark,
        path=path,
        image_root=root,
        split=split_name,
        samples=selected,
        task_of={s.id: keys[s.id] for s in selected},
        invalid_gt=invalid,
        unreadable=unreadable,
        all_ids=set(keys),
        tasks_selected=tuple(tasks) if tasks else None,
        limit=limit,
    )
