"""correspondence: the object marked in image 1 has a counterpart in image 2 of the same shape.

"Similar function or meaning" becomes "same shape, another colour". Distractors in image 2 have other
shapes (at higher levels often the marked object's colour, a trap for colour matching), and the
unmarked objects of image 1 wear those shapes, so only the red marker says which shape to look for.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import CORRESPONDENCE
from univg.data.synthetic.scene import COLOURS, SHAPES, Look, name, object_count, random_look, random_scene

TASK = "correspondence"


def generate(rng: random.Random, level: Level) -> Problem:
    marked = random_look(rng, level)
    counterpart = Look(
        rng.choice([c for c in COLOURS if c != marked.colour]), marked.shape, rng.choice(level.textures)
    )
    other_shapes = [s for s in SHAPES if s != marked.shape]
    second: list[Look] = [counterpart]
    for _ in range(object_count(rng, level) - 1):
        colour = marked.colour if rng.random() < level.similar else rng.choice(list(COLOURS))
        second.append(Look(colour, rng.choice(other_shapes), rng.choice(level.textures)))
    decoy_shapes = [look.shape for look in second[1:]]
    first = [marked] + [
        Look(rng.choice(list(COLOURS)), rng.choice(decoy_shapes), rng.choice(level.textures))
        for _ in range(object_count(rng, level) - 1)
    ]
    images = (
        SceneImage(random_scene(first, rng, level), marker=1),
        SceneImage(random_scene(second, rng, level)),
    )
    phrase = name(counterpart, second)
    chain = (
        f"The marked object is {name(marked, first)}; image 2 has {{obj}} of the same shape,"
        " at the {where}."
    )
    return object_one_problem(TASK, level, images, CORRESPONDENCE, phrase, chain, target_image=1)
