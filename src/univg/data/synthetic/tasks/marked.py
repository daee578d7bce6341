"""marked: "Name and locate the object marked with red bounding box(...)." A base model's naming step.

Not a MIG-Bench task: the box is given, so what is learned is the name of the object inside it (its
colour, shape and, when a twin differs only by it, its texture). Several MIG-Bench chains start by
naming a marked or shared object ("The marked object is the red circle; ..."); a base that can name
what it sees writes those words from the pixels instead of a fixed phrase.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage
from univg.data.synthetic.questions import MARKED
from univg.data.synthetic.scene import distractor_looks, name, object_count, random_look, random_scene

TASK = "marked"


def generate(rng: random.Random, level: Level) -> Problem:
    target = random_look(rng, level)
    looks = [target, *distractor_looks(target, object_count(rng, level) - 1, rng, level)]
    return Problem(
        task=TASK,
        level=level.name,
        images=(SceneImage(random_scene(looks, rng, level), marker=1),),
        question=MARKED,
        target_image=0,
        target=1,
        phrase=name(target, looks),
        chain="The marked object is {obj}; it is at the {where}.",
    )
