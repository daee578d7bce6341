"""referring: single-image referring expressions, RefCOCO-like ("the red circle left of the blue square").

The expression is the shortest kind that picks out exactly one object: its look, or, when look-alikes
share the scene, its size, its extreme position among them, or a relation to a unique anchor object.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import expression_question
from univg.data.synthetic.scene import (
    Obj,
    PlacementError,
    Scene,
    background,
    distractor_looks,
    name,
    object_count,
    place,
    random_look,
    random_sizes,
)

TASK = "referring"
EXTREME_MARGIN = 0.08  # the target must beat the next look-alike by this much to be 'leftmost'
SIZE_RATIO = 1.4  # 'big' and 'small' need this size ratio between two look-alikes
RELATIONS = {
    "left of": lambda a, b: a.extent[2] <= b.extent[0],
    "right of": lambda a, b: a.extent[0] >= b.extent[2],
    "above": lambda a, b: a.extent[3] <= b.extent[1],
    "below": lambda a, b: a.extent[1] >= b.extent[3],
}
# Where a look-alike must lie (by its centre) to be clearly NOT in the relation.
OPPOSITE = {
    "left of": lambda a, b: a.cx > b.cx,
    "right of": lambda a, b: a.cx < b.cx,
    "above": lambda a, b: a.cy > b.cy,
    "below": lambda a, b: a.cy < b.cy,
}
EXTREMES = {
    "leftmost": lambda o: o.cx,
    "rightmost": lambda o: -o.cx,
    "top": lambda o: o.cy,
    "bottom": lambda o: -o.cy,
}


def expressions(objects: tuple[Obj, ...], target: Obj) -> list[tuple[str, str]]:
    """Every (kind, expression) that refers to `target` and to no other object."""
    looks = [o.look for o in objects]
    noun = name(target.look, looks)
    alikes = [o for o in objects if o.look == target.look and o.id != target.id]
    found: list[tuple[str, str]] = []
    if not alikes:
        found.append(("attribute", noun))
    if len(alikes) == 1:
        ratio = target.size / alikes[0].size
        if ratio >= SIZE_RATIO or ratio <= 1 / SIZE_RATIO:
            found.append(("size", noun.replace("the ", "the big " if ratio > 1 else "the small ", 1)))
    if alikes:
        for word, key in EXTREMES.items():
            if all(key(target) + EXTREME_MARGIN <= key(o) for o in alikes):
                found.append(("extreme", noun.replace("the ", f"the {word} ", 1)))
    for anchor in objects:
        if anchor.look == target.look or looks.count(anchor.look) > 1:
            continue
        for relation, holds in RELATIONS.items():
            if holds(target, anchor) and all(OPPOSITE[relation](o, anchor) for o in alikes):
                found.append(("relation", f"{noun} {relation} {name(anchor.look, looks)}"))
    return found


def generate(rng: random.Random, level: Level) -> Problem:
    target = random_look(rng, level)
    count = object_count(rng, level)
    twins = 0 if rng.random() >= level.similar else rng.randint(1, max(1, count - 2))
    looks = [target] * (1 + twins) + distractor_looks(target, count - 1 - twins, rng, level)
    objects = place(looks, rng, random_sizes(count, rng, level))
    found = expressions(objects, objects[0])
    if not found:
        raise PlacementError("no unambiguous expression for this scene")
    attribute = [e for e in found if e[0] == "attribute"]
    kind, expression = attribute[0] if attribute and rng.random() < 0.5 else rng.choice(found)
    image = SceneImage(Scene(objects, background(rng)))
    question = expression_question(expression, rng, tagged=False)
    chain = "{obj} is at the {where}."
    return object_one_problem(
        TASK, level, (image,), question, expression, chain, target_image=0, variant=kind
    )
