"""refer_grounding: image 1 shows one object on its own; find it among distractors in image 2.

The question never names the object: its look is only in image 1, and image 2 holds near misses.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import REFER_GROUNDING
from univg.data.synthetic.scene import (
    Scene,
    background,
    name,
    object_count,
    place,
    random_look,
    random_scene,
    with_distractors,
)

TASK = "refer_grounding"
QUERY_SIZE = (0.45, 0.6)  # image 1 is a close-up of the object, as MIG-Bench's crops are


def generate(rng: random.Random, level: Level) -> Problem:
    target = random_look(rng, level)
    query = Scene(place([target], rng, [rng.uniform(*QUERY_SIZE)]), background(rng))
    looks = with_distractors(target, object_count(rng, level), rng, level)
    images = (SceneImage(query), SceneImage(random_scene(looks, rng, level)))
    chain = "Image 1 shows {obj}; in image 2 it is at the {where}."
    phrase = name(target, looks)
    return object_one_problem(TASK, level, images, REFER_GROUNDING, phrase, chain, target_image=1)
