"""diff: two images of one scene with one object added, removed, recoloured or reshaped.

Both images share one geometry, so the answer box covers the changed object wherever it is drawn
(`Problem.union`); the box is given in image 1, as MIG-Bench's converter reads it.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import DIFF
from univg.data.synthetic.scene import (
    CHANGES,
    Scene,
    changed_scenes,
    name,
    object_count,
    random_scene,
    target_and_distractors,
)

TASK = "diff"
VARIANTS = ("added", "removed", *CHANGES)


def _chain(variant: str, after: Scene) -> str:
    if variant == "added":
        return "Image 2 has {obj}, missing in image 1, at the {where}."
    if variant == "removed":
        return "Image 2 lacks {obj} of image 1, at the {where}."
    new = after.get(1).look
    change = f"in {new.colour}" if variant == "recoloured" else f"as a {new.shape}"
    return f"Image 2 shows {{obj}} of image 1 {change}, at the {{where}}."


def generate(rng: random.Random, level: Level) -> Problem:
    variant = rng.choice(VARIANTS)
    looks = target_and_distractors(object_count(rng, level) + 1, rng, level)
    before, after = changed_scenes(random_scene(looks, rng, level), variant, rng)
    images = (SceneImage(before), SceneImage(after))
    phrase = name(looks[0], looks)
    return object_one_problem(
        TASK, level, images, DIFF, phrase, _chain(variant, after), target_image=0, union=True, variant=variant
    )
