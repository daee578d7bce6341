"""What a demo run found, as plain data: the report renders it, results.json stores it.

Every number the report shows comes from here, so the terminal table, report.md, report.html and
results.json cannot disagree, and a report can be rendered again from results.json alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from univg.data.files import write_text_atomic
from univg.evaluation.intervals import Interval, macro_mean_interval, paired_difference_interval
from univg.evaluation.pages import RESULTS_FILE

ACCURACY_REWARD = "rewards/accuracy_reward/mean"


@dataclass
class GalleryItem:
    """One held-out sample drawn in the report: its target image, the truth and each stage's box."""

    id: str
    task: str
    question: str
    image: str
    truth: list[float]
    boxes: dict[str, list[float] | None] = field(default_factory=dict)  # stage key -> box (canonical)
    ious: dict[str, float] = field(default_factory=dict)


@dataclass
class StageResult:
    """One row of the table: a model, its per-sample held-out hits and how it was trained."""

    key: str
    label: str
    model_dir: str
    prompt_style: str
    hits: dict[str, list[float]]  # task -> 100 (IoU >= 0.5) or 0 per held-out sample, in split order
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    # task -> 100 or 0 per held-out sample: whether the response names the target
    named: dict[str, list[float]] = field(default_factory=dict)

    def accuracy(self, task: str) -> float:
        values = self.hits[task]
        return sum(values) / len(values)

    def average(self, tasks: list[str]) -> Interval:
        return macro_mean_interval({t: self.hits[t] for t in tasks})

    def naming(self, tasks: list[str]) -> float | None:
        """Percent of the held-out responses of `tasks` that name their target (None: not measured)."""
        values = [v for t in tasks for v in self.named.get(t, [])]
        return sum(values) / len(values) if values else None

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of one logged training metric."""
        points = [(e["step"], e[key]) for e in self.log_history if key in e and "step" in e]
        return [float(s) for s, _ in points], [float(v) for _, v in points]

    def quarters(self, key: str) -> tuple[float, float] | None:
        """Mean of a logged metric over the first and the last quarter of the run's steps."""
        _, values = self.series(key)
        if not values:
            return None
        window = max(1, len(values) // 4)
        return sum(values[:window]) / window, sum(values[-window:]) / window


@dataclass
class DemoResults:
    """A whole run: settings, the tasks, every stage and the held-out gallery."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    tasks: list[str]
    multi_image_tasks: list[str]
    stages: list[StageResult]
    seconds: float
    gallery: list[GalleryItem] = field(default_factory=list)

    def stage(self, key: str) -> StageResult:
        return next(s for s in self.stages if s.key == key)

    def comparisons(self) -> list[tuple[str, str]]:
        """(before, after) stage keys the report compares: each stage over the one it starts from, the
        two GRPO runs against each other, and every later stage against the base."""
        keys = [s.key for s in self.stages]
        pairs = [(a, b) for a, b in (("base", "sft"), ("sft", "grpo"), ("sft", "grpo_difficulty"))]
        pairs += [("grpo", "grpo_difficulty"), ("base", "grpo"), ("base", "grpo_difficulty")]
        return [(a, b) for a, b in pairs if a in keys and b in keys]

    def difference(self, before: str, after: str, tasks: list[str] | None = None) -> Interval:
        tasks = tasks or self.tasks
        first, second = self.stage(before), self.stage(after)
        return paired_difference_interval(
            {t: first.hits[t] for t in tasks}, {t: second.hits[t] for t in tasks}
        )

    def to_json(self) -> dict[str, Any]:
        """Everything, plus the derived numbers a reader of results.json wants without recomputing."""
        stages = []
        for stage in self.stages:
            stages.append(
                {
                    **asdict(stage),
                    "acc@0.5": {t: stage.accuracy(t) for t in self.tasks},
                    "names_target": {t: stage.naming([t]) for t in self.tasks},
                    "average": stage.average(self.tasks).to_json(),
                    "multi_image_average": stage.average(self.multi_image_tasks).to_json(),
                    "accuracy_reward_first_last_quarter": stage.quarters(ACCURACY_REWARD),
                    "easy_share_first_last_quarter": stage.quarters("difficulty/easy"),
                    "hard_share_first_last_quarter": stage.quarters("difficulty/hard"),
                }
            )
        differences = [
            {
                "before": before,
                "after": after,
                "average": self.difference(before, after).to_json(),
                "multi_image_average": self.difference(before, after, self.multi_image_tasks).to_json(),
            }
            for before, after in self.comparisons()
        ]
        return {
            "settings": self.settings,
            "machine": self.machine,
            "seconds": round(self.seconds, 1),
            "tasks": self.tasks,
            "multi_image_tasks": self.multi_image_tasks,
            "stages": stages,
            "differences": differences,
            "gallery": [asdict(item) for item in self.gallery],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DemoResults:
        fields = {f for f in StageResult.__dataclass_fields__}
        return cls(
            settings=data["settings"],
            machine=data["machine"],
            tasks=data["tasks"],
            multi_image_tasks=data["multi_image_tasks"],
            stages=[StageResult(**{k: v for k, v in s.items() if k in fields}) for s in data["stages"]],
            seconds=data["seconds"],
            gallery=[GalleryItem(**item) for item in data["gallery"]],
        )

    def write(self, folder: Path) -> Path:
        """DIR/results.json, written to a temporary file and renamed into place."""
        path = folder / RESULTS_FILE
        write_text_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")
        return path
