"""view_diff: two views of one scene from different cameras, with one real change in the second.

The camera moves between the views, so a pixel difference lights up everything; only comparing the
objects finds the one that was added, recoloured or reshaped. Every object stays in both views, so
nothing else seems to come or go. The answer is its box in image 2.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import VIEW_DIFF
from univg.data.synthetic.scene import (
    CHANGES,
    Camera,
    PlacementError,
    changed_scenes,
    inside,
    name,
    object_count,
    random_camera,
    random_scene,
    target_and_distractors,
)

TASK = "view_diff"
VARIANTS = ("added", *CHANGES)
CAMERA_TRIES = 50
MIN_CAMERA_MOVE = 0.06


def _moved(a: Camera, b: Camera) -> bool:
    return abs(a.dx - b.dx) + abs(a.dy - b.dy) + abs(a.scale - b.scale) >= MIN_CAMERA_MOVE


def generate(rng: random.Random, level: Level) -> Problem:
    variant = rng.choice(VARIANTS)
    looks = target_and_distractors(object_count(rng, level) + 1, rng, level)
    world = random_scene(looks, rng, level, margin=0.1)
    before_world, after_world = changed_scenes(world, variant, rng)
    if variant == "added":
        chain = "Compared with image 1, image 2 adds {obj}, at the {where}."
    else:
        chain = f"{name(looks[0], looks)} of image 1 is {{obj}} in image 2, at the {{where}}."
    for _ in range(CAMERA_TRIES):
        first, second = random_camera(rng, level), random_camera(rng, level)
        seen = (*world.viewed(first).objects, *after_world.viewed(second).objects)
        if _moved(first, second) and all(inside(obj.extent) for obj in seen):
            break
    else:
        raise PlacementError("no camera pair keeps every object in both views")
    images = (SceneImage(before_world.viewed(first)), SceneImage(after_world.viewed(second)))
    looks_after = [obj.look for obj in after_world.objects]  # the target's look as image 2 shows it
    phrase = name(looks_after[0], looks_after)
    return object_one_problem(TASK, level, images, VIEW_DIFF, phrase, chain, target_image=1, variant=variant)
