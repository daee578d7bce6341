"""Scoring a demo model on a synthetic held-out split with the evaluation harness, sample by sample.

Every stage of the demo and every phase of the base's pretraining is scored here, by the same harness
and scorer a user's model meets (`univg eval run --benchmark synthetic`), so a demo number means what a
benchmark number means. The per-sample hits feed the bootstrap intervals of the report.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

# 112 x 112 images, 16 image tokens each: the demo world's size.
MAX_PIXELS = 12544
MIN_PIXELS = 3136
HIT = 0.5  # Acc@0.5


@dataclass
class StageScores:
    """Per task, 100 or 0 per held-out sample (IoU >= 0.5 in the harness's primary parse mode), in split
    order; per sample id, the box read (canonical 0..1) and its IoU; per task, 100 or 0 per sample for
    whether the response names the target (the phrase its teacher chain names), which tells a chain that
    reasons about the asked object from one that recites a fixed phrase."""

    hits: dict[str, list[float]]
    boxes: dict[str, tuple[list[float] | None, float]] = field(default_factory=dict)
    seconds: float = 0.0
    named: dict[str, list[float]] = field(default_factory=dict)

    def accuracy(self) -> dict[str, float]:
        """Acc@0.5 (percent) per task and their macro "average"."""
        per_task = _per_task_mean(self.hits)
        per_task["average"] = sum(per_task.values()) / len(per_task)
        return per_task

    def naming(self) -> dict[str, float]:
        """Percent of each task's responses that name the target."""
        return _per_task_mean(self.named)


def _per_task_mean(values: dict[str, list[float]]) -> dict[str, float]:
    return {task: sum(v) / len(v) for task, v in values.items()}


def score_model(
    model_dir: str | Path,
    eval_file: str | Path,
    out: str | Path,
    *,
    style: str,
    batch_size: int = 32,
    max_new_tokens: int = 96,
    progress: bool = False,
) -> StageScores:
    """Answer every held-out sample with `model_dir` (a fresh run in `out`) and score each one."""
    from univg.core.boxes import CoordSystem
    from univg.evaluation import (
        RunConfig,
        load_benchmark,
        read_predictions,
        run_evaluation,
        score_predictions,
    )

    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    run_evaluation(
        RunConfig(
            "synthetic",
            str(eval_file),
            str(model_dir),
            str(out),
            style=style,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            max_pixels=MAX_PIXELS,
            min_pixels=MIN_PIXELS,
            dtype="float32",
            progress=progress,
            examples=0,  # the demo draws its own gallery
        )
    )
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    data = load_benchmark("synthetic", str(eval_file))
    scores = score_predictions(
        data,
        read_predictions(out / "predictions.jsonl"),
        parse=run["parse"],
        coords=CoordSystem.parse(run.get("coords", "qwen2vl")),
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
    )
    phrases = {s.id: str(s.extra.get("phrase", "")).lower() for s in data.samples}
    hits: dict[str, list[float]] = {}
    boxes: dict[str, tuple[list[float] | None, float]] = {}
    named: dict[str, list[float]] = {}
    for sample in scores.samples:
        value = sample.ious[run["parse"]]
        hits.setdefault(sample.task, []).append(100.0 if value >= HIT else 0.0)
        box = sample.boxes[run["parse"]]
        boxes[sample.id] = (list(box) if box is not None else None, value)
        phrase = phrases.get(sample.id, "")
        says = bool(phrase) and phrase in (sample.response or "").lower()
        named.setdefault(sample.task, []).append(100.0 if says else 0.0)
    return StageScores(hits, boxes, time.perf_counter() - started, named)
