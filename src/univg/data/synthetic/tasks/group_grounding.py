"""group_grounding: an expression names an object found in only one of several images.

The question does not say which image; the other images hold its near misses (same colour or same
shape), so the model has to search them all. The chain says which image it is in.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage
from univg.data.synthetic.questions import expression_question
from univg.data.synthetic.scene import distractor_looks, name, object_count, random_look, random_scene

TASK = "group_grounding"


def generate(rng: random.Random, level: Level) -> Problem:
    count = min(5, 3 + level.more_images)
    k = rng.randrange(count)
    target = random_look(rng, level)
    scenes = []
    for index in range(count):
        n = object_count(rng, level)
        looks = distractor_looks(target, n, rng, level)
        if index == k:
            looks[0] = target
        scenes.append(random_scene(looks, rng, level))
    expression = name(target, [o.look for s in scenes for o in s.objects])
    return Problem(
        task=TASK,
        level=level.name,
        images=tuple(SceneImage(s) for s in scenes),
        question=expression_question(expression, rng, tagged=True),
        target_image=k,
        target=1,
        phrase=expression,
        chain=f"Only image {k + 1} has {{obj}}; it is at the {{where}}.",
    )
