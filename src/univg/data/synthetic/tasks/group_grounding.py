"""group_grounding: an expression names an object found in only one of several images.

The question does not say which image; the other images hold its near misses (same colour or same
shape), so the model has to search them all. The chain says which image it is in.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import expression_question
from univg.data.synthetic.scene import (
    Look,
    Scene,
    distractor_looks,
    name,
    object_count,
    random_look,
    random_scene,
)

TASK = "group_grounding"


def _near_misses(target: Look, holds_target: bool, rng: random.Random, level: Level) -> Scene:
    """A scene of `target`'s near misses; the one that holds the target has it as object 1."""
    looks = distractor_looks(target, object_count(rng, level), rng, level)
    if holds_target:
        looks[0] = target
    return random_scene(looks, rng, level)


def generate(rng: random.Random, level: Level) -> Problem:
    count = min(5, 3 + level.more_images)
    k = rng.randrange(count)
    target = random_look(rng, level)
    scenes = [_near_misses(target, index == k, rng, level) for index in range(count)]
    expression = name(target, [o.look for s in scenes for o in s.objects])
    question = expression_question(expression, rng, tagged=True)
    chain = f"Only image {k + 1} has {{obj}}; it is at the {{where}}."
    return object_one_problem(
        TASK, level, map(SceneImage, scenes), question, expression, chain, target_image=k
    )
