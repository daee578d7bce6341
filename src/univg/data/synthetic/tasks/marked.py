"""marked: "Name and locate the object marked with red bounding box(...)." A base model's naming step.

Not a MIG-Bench task: the box is given, so what is learned is the name of the object inside it (its
colour, shape and, when a twin differs only by it, its texture). Several MIG-Bench chains start by
naming a marked or shared object ("The marked object is the red circle; ..."); a base that can name
what it sees writes those words from the pixels instead of a fixed phrase.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import MARKED
from univg.data.synthetic.scene import name, object_count, random_look, random_scene, with_distractors

TASK = "marked"


def generate(rng: random.Random, level: Level) -> Problem:
    target = random_look(rng, level)
    looks = with_distractors(target, object_count(rng, level), rng, level)
    image = SceneImage(random_scene(looks, rng, level), marker=1)
    chain = "The marked object is {obj}; it is at the {where}."
    return object_one_problem(TASK, level, (image,), MARKED, name(target, looks), chain, target_image=0)
