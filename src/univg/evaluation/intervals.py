"""95% bootstrap intervals for macro-averaged scores and for the difference between two models.

A table of held-out accuracies says little without its noise: with 100 samples a task, one sample moves
a task's Acc@0.5 by a point. The intervals resample the samples of each task with replacement (so every
resample keeps the per-task counts, as the macro average weighs tasks equally), and a difference between
two models resamples the same samples for both (paired), which is far tighter than two separate intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with the bounds of its bootstrap interval (same unit as the values)."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.estimate:.1f} [{self.low:.1f}, {self.high:.1f}]"


def _resampled_macro_means(
    per_task: Mapping[str, np.ndarray], resamples: int, seed: int
) -> tuple[float, np.ndarray]:
    rng = np.random.default_rng(seed)
    estimate = float(np.mean([values.mean() for values in per_task.values()]))
    means = np.zeros(resamples)
    for values in per_task.values():
        picks = rng.integers(0, len(values), size=(resamples, len(values)))
        means += values[picks].mean(axis=1)
    return estimate, means / len(per_task)


def _interval(estimate: float, draws: np.ndarray, level: float) -> Interval:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high))


def _arrays(values: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    arrays = {task: np.asarray(v, dtype=np.float64) for task, v in values.items()}
    empty = [task for task, v in arrays.items() if v.size == 0]
    if not arrays or empty:
        raise ValueError(f"every task needs at least one sample (empty: {empty or 'no tasks'})")
    return arrays


def macro_mean_interval(
    values: Mapping[str, Sequence[float]], *, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Interval:
    """The macro average over tasks of per-sample values (e.g. 100 for a hit, 0 for a miss), with its
    stratified bootstrap interval."""
    estimate, draws = _resampled_macro_means(_arrays(values), resamples, seed)
    return _interval(estimate, draws, level)


def paired_difference_interval(
    before: Mapping[str, Sequence[float]],
    after: Mapping[str, Sequence[float]],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval:
    """macro(after) - macro(before) on the same samples, with its paired stratified bootstrap interval.

    `before[task][i]` and `after[task][i]` must score the same sample.
    """
    first, second = _arrays(before), _arrays(after)
    if first.keys() != second.keys() or any(first[t].shape != second[t].shape for t in first):
        raise ValueError("a paired difference needs the same tasks with the same samples in both")
    difference = {task: second[task] - first[task] for task in first}
    estimate, draws = _resampled_macro_means(difference, resamples, seed)
    return _interval(estimate, draws, level)
