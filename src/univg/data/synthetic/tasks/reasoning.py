"""reasoning: image 1 poses a small puzzle whose answer is an object in image 2.

Three puzzles, each a step of inference that no single image settles:
- count: count the objects in image 1, take the object at that position from the left in image 2;
- majority: find the colour most objects in image 1 share, take the object of that colour in image 2;
- extra: image 2 repeats image 1's objects (moved, resized) plus one; take the one that is new.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage
from univg.data.synthetic.questions import REASONING_SUFFIX
from univg.data.synthetic.scene import (
    COLOURS,
    SHAPES,
    Look,
    Obj,
    Scene,
    background,
    distractor_looks,
    name,
    object_count,
    ordinal,
    place,
    random_look,
    random_sizes,
    similar_look,
)

TASK = "reasoning"
VARIANTS = ("count", "majority", "extra")
QUESTIONS = {
    "count": "Count the objects in Image-1, then take the object at that position from the left in Image-2.",
    "majority": "Which colour do most objects in Image-1 have? Locate the object of that colour in Image-2.",
    "extra": "Image-2 shows every object of Image-1 and one more. Which object in Image-2 is new?",
}


def _row(looks: list[Look], rng: random.Random, level: Level) -> tuple[Obj, ...]:
    """Objects in columns from left to right, so 'the k-th from the left' is never in doubt."""
    width = 1 / len(looks)
    objects = []
    for index, look in enumerate(looks):
        size = min(rng.uniform(*level.size), width - 0.04)
        cx = index * width + width / 2 + rng.uniform(-1, 1) * (width - size - 0.04) / 2
        objects.append(Obj(index + 1, look, cx, rng.uniform(size / 2 + 0.02, 1 - size / 2 - 0.02), size))
    return tuple(objects)


Puzzle = tuple[list[Look], tuple[Obj, ...], int, str]  # image 1 looks, image 2 objects, target id, chain


def _count(rng: random.Random, level: Level) -> Puzzle:
    counted = rng.randint(1, 3 if level.name == "easy" else 4)
    first = [random_look(rng, level) for _ in range(counted)]
    columns = min(5, max(counted + rng.randint(0, 1 + level.more_images), object_count(rng, level)))
    looks = [random_look(rng, level) for _ in range(columns)]
    plural = "s" if counted > 1 else ""
    chain = f"Image 1 has {counted} object{plural}; the {ordinal(counted)} from the left in image 2 is"
    return first, _row(looks, rng, level), counted, chain + " {obj}, at the {where}."


def _majority(rng: random.Random, level: Level) -> Puzzle:
    colours = rng.sample(list(COLOURS), 3)
    most = colours[0]
    minority = colours[1 : 1 + rng.randint(1, 2)]
    first = [Look(most, rng.choice(SHAPES), rng.choice(level.textures)) for _ in range(rng.randint(2, 3))]
    first += [Look(c, rng.choice(SHAPES), rng.choice(level.textures)) for c in minority]
    n = object_count(rng, level)
    others = minority + rng.sample([c for c in COLOURS if c not in colours], max(0, n - 1 - len(minority)))
    second = [Look(c, rng.choice(SHAPES), rng.choice(level.textures)) for c in [most, *others[: n - 1]]]
    objects = place(second, rng, random_sizes(len(second), rng, level))
    chain = f"Most objects in image 1 are {most}; in image 2 that is {{obj}}, at the {{where}}."
    return first, objects, 1, chain


def _extra(rng: random.Random, level: Level) -> Puzzle:
    n = object_count(rng, level)
    first = list(dict.fromkeys(random_look(rng, level) for _ in range(n - 1)))
    new = similar_look(rng.choice(first), rng, level) if rng.random() < level.similar else None
    if new is None or new in first:
        new = distractor_looks(first[0], 1, rng, level, avoid=first)[0]
    second = [new, *first]
    objects = place(second, rng, random_sizes(len(second), rng, level))
    return first, objects, 1, "Image 1 lacks {obj}; in image 2 it is at the {where}."


PUZZLES = {"count": _count, "majority": _majority, "extra": _extra}


def generate(rng: random.Random, level: Level) -> Problem:
    variant = rng.choice(VARIANTS)
    first, objects, target, chain = PUZZLES[variant](rng, level)
    sizes = [min(size, 0.3) for size in random_sizes(len(first), rng, level)]
    scene1 = Scene(place(first, rng, sizes), background(rng))
    answer = next(o for o in objects if o.id == target)
    return Problem(
        task=TASK,
        level=level.name,
        images=(SceneImage(scene1), SceneImage(Scene(objects, background(rng)))),
        question=QUESTIONS[variant] + REASONING_SUFFIX,
        target_image=1,
        target=target,
        phrase=name(answer.look, [o.look for o in objects]),
        chain=chain,
        variant=variant,
    )
