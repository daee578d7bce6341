"""region: a source image followed by region pictures cut from it; locate the k-th region.

Each region is a square cut around a different object, with a random margin, and scaled up to the
full image size. The answer is the rectangle it was cut from, not the object inside it.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import CropImage, Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import REGION
from univg.data.synthetic.scene import Obj, Rect, name, object_count, random_scene, target_and_distractors

TASK = "region"
MARGIN = (1.3, 1.8)  # region side over object side


def _cut(obj: Obj, rng: random.Random) -> Rect:
    """A square holding `obj` whole, placed at random around it and inside the image."""
    side = min(1.0, obj.size * rng.uniform(*MARGIN))
    x0, y0, x1, y1 = obj.extent
    left = rng.uniform(max(0.0, x1 - side), min(x0, 1.0 - side))
    top = rng.uniform(max(0.0, y1 - side), min(y0, 1.0 - side))
    return (left, top, left + side, top + side)


def generate(rng: random.Random, level: Level) -> Problem:
    n = object_count(rng, level)
    looks = target_and_distractors(n, rng, level)
    scene = random_scene(looks, rng, level)
    regions = min(n, 3, 1 + level.more_images + rng.randint(0, 1))
    k = rng.randrange(regions)
    others = rng.sample(scene.objects[1:], regions - 1)
    subjects = [*others[:k], scene.objects[0], *others[k:]]
    crops = [CropImage(0, _cut(obj, rng), obj.id) for obj in subjects]
    chain = f"Region {k + 1} shows {{obj}}; in the source image it is at the {{where}}."
    images = (SceneImage(scene), *crops)
    phrase = name(looks[0], looks)
    return object_one_problem(
        TASK, level, images, REGION.format(k=k + 1), phrase, chain, target_image=0, crop=k + 1
    )
