"""common_object: "These images share one object in common. Recognize and locate this object in the 3th
image."

Exactly one look appears in every image. Distractors come from a small shared pool, so each of them
also recurs in other images and only a check against all images tells the common one apart.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import COMMON_OBJECT
from univg.data.synthetic.scene import distractor_looks, name, object_count, random_look, random_scene

TASK = "common_object"


def generate(rng: random.Random, level: Level) -> Problem:
    count = min(5, 3 + level.more_images)
    common = random_look(rng, level)
    extra = [object_count(rng, level) - 1 for _ in range(count)]
    pool = list(dict.fromkeys(distractor_looks(common, max(extra) + 1, rng, level)))
    per_image = [rng.sample(pool, min(n, len(pool))) for n in extra]
    for look in pool:
        holders = [looks for looks in per_image if look in looks]
        if len(holders) == count:
            looks = rng.choice(holders)
            looks[looks.index(look)] = distractor_looks(common, 1, rng, level, avoid=pool)[0]
    scenes = [random_scene([common, *looks], rng, level) for looks in per_image]
    k = rng.randrange(count)
    question = COMMON_OBJECT.format(k=k + 1)
    chain = f"{{obj}} is in every image; in image {k + 1} it is at the {{where}}."
    phrase = name(common, [o.look for s in scenes for o in s.objects])
    return object_one_problem(TASK, level, map(SceneImage, scenes), question, phrase, chain, target_image=k)
