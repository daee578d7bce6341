"""object_tracking: objects move through a sequence of frames; follow the one marked in frame 1.

Every object has its own velocity (bouncing off the borders) and grows or shrinks a little per frame,
so unlike multi_view no single camera move explains the scene. The target travels at least half its
size by frame k; in frames 1 and k no objects touch (in between they may pass over each other), and
at higher levels a static post may hide part of the target in frame k.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, marked_then_found
from univg.data.synthetic.questions import OBJECT_TRACKING
from univg.data.synthetic.scene import (
    Obj,
    PlacementError,
    Scene,
    background,
    moved_enough,
    name,
    object_count,
    occluder_over,
    overlaps,
    place,
    random_sizes,
    target_and_distractors,
)

TASK = "object_tracking"
MOTION_TRIES = 30


def _bounce(position: float, low: float, high: float) -> float:
    """`position` folded back into low..high, as a ball bouncing between two walls."""
    span = high - low
    offset = (position - low) % (2 * span)
    return low + (offset if offset <= span else 2 * span - offset)


def _trajectory(obj: Obj, frames: int, rng: random.Random, level: Level, min_speed: float = 0.0) -> list[Obj]:
    angle = rng.uniform(0, 2 * math.pi)
    speed = max(min_speed, rng.uniform(0.5, 1.0) * level.motion / 2)
    growth = rng.uniform(-0.04, 0.04)
    path = []
    for t in range(frames):
        size = obj.size * (1 + growth) ** t
        low, high = size / 2 + 0.01, 1 - size / 2 - 0.01
        cx = _bounce(obj.cx + speed * math.cos(angle) * t, low, high)
        cy = _bounce(obj.cy + speed * math.sin(angle) * t, low, high)
        path.append(replace(obj, cx=cx, cy=cy, size=size))
    return path


def _apart(objects: list[Obj]) -> bool:
    return not any(
        overlaps(a.extent, b.extent, 0.02) for i, a in enumerate(objects) for b in objects[i + 1 :]
    )


def generate(rng: random.Random, level: Level) -> Problem:
    frames = min(6, 4 + level.more_images)
    k = rng.randrange(1, frames)
    looks = target_and_distractors(object_count(rng, level), rng, level)
    start = place(looks, rng, random_sizes(len(looks), rng, level))
    for _ in range(MOTION_TRIES):
        # The target is fast enough to leave its marked box by frame k.
        paths = [_trajectory(start[0], frames, rng, level, 0.55 * start[0].size / k)]
        paths += [_trajectory(obj, frames, rng, level) for obj in start[1:]]
        snapshots = [[path[t] for path in paths] for t in range(frames)]
        if moved_enough(paths[0][0], paths[0][k]) and _apart(snapshots[0]) and _apart(snapshots[k]):
            break
    else:
        raise PlacementError("no motion moves the target enough and keeps frames 1 and k clear")
    posts: tuple = ()
    if rng.random() < level.occlusion:
        post = occluder_over(paths[0][k], rng)
        if not overlaps(post, paths[0][0].extent, 0.02):
            posts = (post,)
    ground = background(rng)
    scenes = [Scene(tuple(snapshot), ground, posts) for snapshot in snapshots]
    return marked_then_found(TASK, level, scenes, OBJECT_TRACKING, k, name(looks[0], looks))
