"""diff: two images of one scene with one object added, removed, recoloured or reshaped.

Both images share one geometry, so the answer box covers the changed object wherever it is drawn
(`Problem.union`); the box is given in image 1, as MIG-Bench's converter reads it.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage
from univg.data.synthetic.questions import DIFF
from univg.data.synthetic.scene import (
    CHANGES,
    changed_look,
    distractor_looks,
    name,
    object_count,
    random_look,
    random_scene,
)

TASK = "diff"
VARIANTS = ("added", "removed", *CHANGES)


def generate(rng: random.Random, level: Level) -> Problem:
    variant = rng.choice(VARIANTS)
    count = object_count(rng, level) + 1
    target = random_look(rng, level)
    looks = [target, *distractor_looks(target, count - 1, rng, level)]
    full = random_scene(looks, rng, level)
    before, after = full, full
    if variant == "added":
        before = full.without(1)
        chain = "Image 2 has {obj}, missing in image 1, at the {where}."
    elif variant == "removed":
        after = full.without(1)
        chain = "Image 2 lacks {obj} of image 1, at the {where}."
    else:
        new = changed_look(target, variant, rng)
        after = full.with_look(1, new)
        change = f"in {new.colour}" if variant == "recoloured" else f"as a {new.shape}"
        chain = f"Image 2 shows {{obj}} of image 1 {change}, at the {{where}}."
    return Problem(
        task=TASK,
        level=level.name,
        images=(SceneImage(before), SceneImage(after)),
        question=DIFF,
        target_image=0,
        target=1,
        phrase=name(target, looks),
        chain=chain,
        union=True,
        variant=variant,
    )
