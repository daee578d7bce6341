"""One generator per task; each turns a seeded `random.Random` and a difficulty level into a Problem."""

from __future__ import annotations

import random
from collections.abc import Callable

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem
from univg.data.synthetic.scene import PlacementError
from univg.data.synthetic.tasks import (
    common_object,
    correspondence,
    diff,
    group_grounding,
    locate,
    marked,
    multi_view,
    object_tracking,
    reasoning,
    refer_grounding,
    referring,
    region,
    view_diff,
)

Generator = Callable[[random.Random, Level], Problem]

# MIG-Bench's ten tasks, in the benchmark's order of its table columns.
MIG_TASKS = (
    "common_object",
    "correspondence",
    "diff",
    "group_grounding",
    "multi_view",
    "object_tracking",
    "refer_grounding",
    "region",
    "view_diff",
    "reasoning",
)
GENERATORS: dict[str, Generator] = {
    module.TASK: module.generate
    for module in (
        common_object,
        correspondence,
        diff,
        group_grounding,
        multi_view,
        object_tracking,
        refer_grounding,
        region,
        view_diff,
        reasoning,
        referring,
        locate,
        marked,
    )
}
TASKS = tuple(GENERATORS)
# What `univg data synth` makes unless told otherwise: the benchmark's tasks plus RefCOCO-like referring.
DEFAULT_TASKS = (*MIG_TASKS, "referring")
# The simple tasks a base model is pretrained on before the method's stages (see `univg demo`).
PRETRAIN_TASKS = ("referring", "locate", "marked")
TASK_GROUPS = {"default": DEFAULT_TASKS, "mig": MIG_TASKS, "pretrain": PRETRAIN_TASKS, "all": TASKS}
PROBLEM_TRIES = 200


def parse_tasks(text: str) -> tuple[str, ...]:
    """Task names from a comma list ('diff,region'); the groups default, mig, pretrain and all expand."""
    names: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if word:
            names.extend(TASK_GROUPS.get(word, (word,)))
    unknown = sorted({n for n in names if n not in GENERATORS})
    if unknown or not names:
        groups = tuple(TASK_GROUPS)
        raise ValueError(f"unknown or no tasks {unknown}; expected some of {TASKS} or a group of {groups}")
    return tuple(dict.fromkeys(names))


def make_problem(task: str, rng: random.Random, level: Level) -> Problem:
    """A problem of `task`; scenes that do not fit are redrawn from the same generator."""
    try:
        generate = GENERATORS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}") from None
    for _ in range(PROBLEM_TRIES):
        try:
            return generate(rng, level)
        except PlacementError:
            continue
    raise PlacementError(f"{task}: no scene fitted in {PROBLEM_TRIES} tries at level {level.name}")
