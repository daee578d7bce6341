"""Scoring predictions against a benchmark: every parse mode side by side, plus an image check.

One response is read three ways (see `univg.core.parsing`): ``strict`` (the paper's format),
``answer`` (the box in the answer tag, our default) and ``first`` (the first box anywhere, which is
what the official evaluation scripts do). The image-checked score also requires the image the
response names, when it names one, to be the target (`answer_image`: an image that is not there
fails; for MIG-Bench diff pairs either image is right). Samples with no prediction count as wrong and are listed; records whose ground truth is
invalid are excluded and listed. Numbers are percent, averages are macro over tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from univg.core.boxes import CoordSystem, iou
from univg.core.errors import UsageError
from univg.core.metrics import GroundingMetrics
from univg.core.parsing import PARSE_MODES, BoxTuple, ParseMode, answer_image, extract_target_image, read_box
from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.data.images import target_resized_size
from univg.data.schema import GroundingSample
from univg.evaluation.benchmarks import BenchmarkData
from univg.evaluation.predictions import PredictionsError, PredictionSet


def id_order(sample_id: str) -> tuple[bool, int, str]:
    """Sort key that puts positional ids ("2" before "10") in numeric order."""
    return (not sample_id.isdigit(), int(sample_id) if sample_id.isdigit() else 0, sample_id)


@dataclass
class SampleScore:
    """How one sample scored under every parse mode."""

    id: str
    task: str
    response: str | None  # None: no prediction for this id
    error: str | None
    ious: dict[str, float]
    boxes: dict[str, BoxTuple | None]  # the box each mode read, canonical 0..1
    named_image: int | None
    box_image: int | None  # the image the box is in (`answer_image`), None when unknown
    image_ok: bool  # names no image, or names an accepted one

    def checked_iou(self, mode: str) -> float:
        return self.ious[mode] if self.image_ok else 0.0


@dataclass
class Scores:
    """Everything a report needs: metrics by parse mode, the image check, and what was left out."""

    parse: ParseMode
    coords: CoordSystem
    tasks: list[str]
    samples: list[SampleScore]
    by_parse: dict[str, GroundingMetrics]
    image_checked: dict[str, GroundingMetrics]
    invalid_gt: dict[str, str]
    unreadable: dict[str, str]
    missing: list[str]
    errors: dict[str, str]
    unknown_ids: list[str]
    duplicates: int = 0

    def table(self, metrics: GroundingMetrics) -> dict[str, Any]:
        per_task = metrics.per_task()
        return {"tasks": {t: per_task[t] for t in self.tasks if t in per_task}, "average": metrics.average()}

    def to_json(self) -> dict[str, Any]:
        """The scores as results.json and ``--json`` give them (see the module docstring)."""
        primary = self.table(self.by_parse[self.parse])
        by_parse = {
            mode: {**self.table(self.by_parse[mode]), "image_checked": self.table(self.image_checked[mode])}
            for mode in PARSE_MODES
        }
        return {
            "parse": self.parse,
            "coords": self.coords.value,
            "tasks": primary["tasks"],
            "average": primary["average"],
            "invalid_gt": sorted(self.invalid_gt, key=id_order),
            "missing": list(self.missing),
            "image_checked": by_parse[self.parse]["image_checked"],
            "by_parse": by_parse,
            "unreadable": sorted(self.unreadable, key=id_order),
            "errors": sorted(self.errors, key=id_order),
            "unknown_ids": list(self.unknown_ids),
            "problems": {
                "invalid_gt": {k: self.invalid_gt[k] for k in sorted(self.invalid_gt, key=id_order)},
                "unreadable": {k: self.unreadable[k] for k in sorted(self.unreadable, key=id_order)},
                "errors": {k: self.errors[k] for k in sorted(self.errors, key=id_order)},
            },
            "counts": {
                "samples": len(self.samples),
                "predicted": len(self.samples) - len(self.missing),
                "missing": len(self.missing),
                "errors": len(self.errors),
                "invalid_gt": len(self.invalid_gt),
                "unreadable": len(self.unreadable),
                "unknown_ids": len(self.unknown_ids),
                "duplicate_lines": self.duplicates,
            },
        }


def score_sample(
    sample: GroundingSample,
    task: str,
    record: dict[str, Any] | None,
    coords: CoordSystem,
    size: tuple[int, int] | None = None,
) -> SampleScore:
    """One sample under every parse mode; `size` is the resized target image (pixel coordinates)."""
    if record is None:
        zero = dict.fromkeys(PARSE_MODES, 0.0)
        return SampleScore(sample.id, task, None, None, zero, dict.fromkeys(PARSE_MODES), None, None, False)
    text = str(record.get("response") or "")
    boxes = {mode: read_box(text, mode, coords, size) for mode in PARSE_MODES}
    ious = {mode: iou(box, sample.box) if box is not None else 0.0 for mode, box in boxes.items()}
    named = extract_target_image(text)
    placed = answer_image(named, len(sample.images))
    error = str(record["error"]) if "error" in record else None
    image_ok = named is None or placed in sample.accepted_images
    return SampleScore(sample.id, task, text, error, ious, boxes, named, placed, image_ok)


def _check_ids_match(predictions: PredictionSet, known: set[str], data: BenchmarkData) -> None:
    """Refuse predictions none of whose ids is a sample of the data: another benchmark's, or ids
    written another way, which would otherwise score as all missing."""
    if not predictions.records or not known or not set(predictions.records).isdisjoint(known):
        return
    example = next(iter(predictions.records))
    scheme = (
        "the 0-based positions of its records"
        if data.benchmark.ids_are_positions
        else "the 'id' field of its records"
    )
    raise PredictionsError(
        f"none of the {len(predictions.records)} predicted ids is a sample of {data.benchmark.name} "
        f"{data.path} (e.g. {example!r} at {predictions.lines.get(example) or 'the first line'}); its ids "
        f"are {scheme}, e.g. {min(known, key=id_order)!r}"
    )


def require_sizes(data: BenchmarkData, coords: CoordSystem | str) -> None:
    """Pixel coordinates (Qwen2.5-VL) are relative to the resized target image: its size must be known."""
    if CoordSystem.parse(coords) is not CoordSystem.PIXELS:
        return
    unsized = [s.id for s in data.samples if not s.extra.get("target_size")]
    if unsized:
        raise UsageError(
            f"pixel coordinates (qwen25vl) need each target image's size, and {len(unsized)} sample(s) "
            f"(e.g. {unsized[0]}) have none",
            path=data.path,
            option="image_root",
            hint="pass {option} so the images can be measured",
        )


def score_predictions(
    data: BenchmarkData,
    predictions: PredictionSet,
    *,
    parse: ParseMode = "answer",
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Scores:
    """Score a set of predictions on a benchmark's selected samples.

    Pixel coordinates (Qwen2.5-VL) refer to the target image as the processor resized it with
    `min_pixels` / `max_pixels`, so they need the image sizes: read the data with an image root.
    """
    if parse not in PARSE_MODES:
        raise UsageError(f"{{option}} {parse!r} is not one of {PARSE_MODES}", option="parse")
    system = CoordSystem.parse(coords)
    require_sizes(data, system)
    by_parse = {mode: GroundingMetrics() for mode in PARSE_MODES}
    checked = {mode: GroundingMetrics() for mode in PARSE_MODES}
    scored: list[SampleScore] = []
    for sample in data.samples:
        size = None
        if system is CoordSystem.PIXELS:
            size = target_resized_size(sample, min_pixels=min_pixels, max_pixels=max_pixels)
        result = score_sample(
            sample, data.task_of[sample.id], predictions.records.get(sample.id), system, size
        )
        scored.append(result)
        for mode in PARSE_MODES:
            by_parse[mode].add(result.task, result.ious[mode])
            checked[mode].add(result.task, result.checked_iou(mode))
    known = data.all_ids | set(data.invalid_gt) | set(data.unreadable)
    _check_ids_match(predictions, known, data)
    selected = {s.id for s in data.samples}
    return Scores(
        parse=parse,
        coords=system,
        tasks=data.tasks(),
        samples=scored,
        by_parse=by_parse,
        image_checked=checked,
        invalid_gt=dict(data.invalid_gt),
        unreadable=dict(data.unreadable),
        missing=[s.id for s in scored if s.response is None],
        errors={k: v for k, v in predictions.errors().items() if k in selected},
        unknown_ids=sorted((k for k in predictions.records if k not in known), key=id_order),
        duplicates=predictions.duplicates,
    )
