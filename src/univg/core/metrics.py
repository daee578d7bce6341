"""Grounding metrics: Acc@t (share of samples with IoU >= t) and mean IoU, per task and averaged.

Numbers are reported in percent, as the paper's tables do. The average is the macro average over
tasks (each task counts once), which is how MIG-Bench's "Avg" column is computed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

THRESHOLDS = (0.3, 0.5, 0.7)
METRIC_NAMES = (*(f"acc@{t}" for t in THRESHOLDS), "miou")


def summarize(ious: list[float]) -> dict[str, float]:
    """n, Acc@0.3/0.5/0.7 and mIoU (percent) of a list of per-sample IoUs."""
    n = len(ious)
    result: dict[str, float] = {"n": n}
    for t in THRESHOLDS:
        result[f"acc@{t}"] = 100.0 * sum(v >= t for v in ious) / n if n else 0.0
    result["miou"] = 100.0 * sum(ious) / n if n else 0.0
    return result


@dataclass
class GroundingMetrics:
    """Accumulates per-sample IoUs by task."""

    ious: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, task: str, iou_value: float) -> None:
        self.ious[task].append(float(iou_value))

    def tasks(self) -> list[str]:
        return sorted(self.ious)

    def per_task(self) -> dict[str, dict[str, float]]:
        return {task: summarize(self.ious[task]) for task in self.tasks()}

    def average(self) -> dict[str, float]:
        """Macro average over tasks of every metric; n is the total sample count."""
        per_task = self.per_task()
        result: dict[str, float] = {"n": sum(int(m["n"]) for m in per_task.values())}
        for name in METRIC_NAMES:
            values = [m[name] for m in per_task.values()]
            result[name] = sum(values) / len(values) if values else 0.0
        return result

    def overall(self) -> dict[str, float]:
        """Micro average: every sample counts once, whatever its task."""
        return summarize([v for task in self.tasks() for v in self.ious[task]])

    def to_dict(self) -> dict[str, object]:
        return {"tasks": self.per_task(), "average": self.average(), "overall": self.overall()}
