"""multi_view: one scene seen by several cameras; find the object marked in view 1 in view k.

Each view zooms and shifts the whole scene, so the marked box's coordinates, given in the question,
do not answer for view k (the target moves by at least half its size); at higher levels a post may
hide part of it, and near-miss distractors share its colour or shape.
"""

from __future__ import annotations

import random
from dataclasses import replace

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, marked_then_found
from univg.data.synthetic.questions import MULTI_VIEW
from univg.data.synthetic.scene import (
    PlacementError,
    inside,
    moved_enough,
    name,
    object_count,
    occluder_over,
    random_camera,
    random_scene,
    target_and_distractors,
)

TASK = "multi_view"
CAMERA_TRIES = 50


def generate(rng: random.Random, level: Level) -> Problem:
    count = min(5, 3 + level.more_images)
    k = rng.randrange(1, count)
    looks = target_and_distractors(object_count(rng, level), rng, level)
    world = random_scene(looks, rng, level, margin=0.1)
    views = [world.viewed(random_camera(rng, level)) for _ in range(count)]
    for _ in range(CAMERA_TRIES):
        first, kth = views[0].get(1), views[k].get(1)
        if inside(first.extent) and inside(kth.extent) and moved_enough(first, kth):
            break
        views[0], views[k] = (world.viewed(random_camera(rng, level)) for _ in range(2))
    else:
        raise PlacementError("no camera pair keeps the target in view and moves it")
    if rng.random() < level.occlusion:
        views[k] = replace(views[k], occluders=(occluder_over(views[k].get(1), rng),))
    return marked_then_found(TASK, level, views, MULTI_VIEW, k, name(looks[0], looks))
