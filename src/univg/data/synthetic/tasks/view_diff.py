"""view_diff: two views of one scene from different cameras, with one real change in the second.

The camera moves between the views, so a pixel difference lights up everything; only comparing the
objects finds the one that was added, recoloured or reshaped. Every object stays in both views, so
nothing else seems to come or go. The answer is its box in image 2.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage
from univg.data.synthetic.questions import VIEW_DIFF
from univg.data.synthetic.scene import (
    CHANGES,
    Camera,
    PlacementError,
    changed_look,
    distractor_looks,
    inside,
    name,
    object_count,
    random_camera,
    random_look,
    random_scene,
)

TASK = "view_diff"
VARIANTS = ("added", *CHANGES)
CAMERA_TRIES = 50
MIN_CAMERA_MOVE = 0.06


def _moved(a: Camera, b: Camera) -> bool:
    return abs(a.dx - b.dx) + abs(a.dy - b.dy) + abs(a.scale - b.scale) >= MIN_CAMERA_MOVE


def generate(rng: random.Random, level: Level) -> Problem:
    variant = rng.choice(VARIANTS)
    count = object_count(rng, level) + 1
    target = random_look(rng, level)
    looks = [target, *distractor_looks(target, count - 1, rng, level)]
    world = random_scene(looks, rng, level, margin=0.1)
    before_world, after_world = world, world
    looks_after = looks
    if variant == "added":
        before_world = world.without(1)
        chain = "Compared with image 1, image 2 adds {obj}, at the {where}."
    else:
        new = changed_look(target, variant, rng)
        after_world = world.with_look(1, new)
        looks_after = [new, *looks[1:]]
        chain = f"{name(target, looks)} of image 1 is {{obj}} in image 2, at the {{where}}."
    for _ in range(CAMERA_TRIES):
        first, second = random_camera(rng, level), random_camera(rng, level)
        seen = (*world.viewed(first).objects, *after_world.viewed(second).objects)
        if _moved(first, second) and all(inside(obj.extent) for obj in seen):
            break
    else:
        raise PlacementError("no camera pair keeps every object in both views")
    return Problem(
        task=TASK,
        level=level.name,
        images=(SceneImage(before_world.viewed(first)), SceneImage(after_world.viewed(second))),
        question=VIEW_DIFF,
        target_image=1,
        target=1,
        phrase=name(looks_after[0], looks_after),
        chain=chain,
        variant=variant,
    )
