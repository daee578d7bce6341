"""locate: "Locate the red circle in the 2th image." The simple multi-image step a base model learns.

Not a MIG-Bench task: it teaches which image a question points at, with the object named outright,
so pretraining can cover multi-image input before the reasoning tasks. The named look may also
appear in other images, so the image index in the question matters. Its image count spans the
benchmark tasks' counts at each level (two images up to object tracking's 4-6 frames): a base trained
on two or three images only locates in neither a 4th nor a 5th image (docs/demo-tuning.md, session 11).
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import Level
from univg.data.synthetic.problem import Problem, SceneImage, object_one_problem
from univg.data.synthetic.questions import LOCATE
from univg.data.synthetic.scene import distractor_looks, name, object_count, random_look, random_scene

TASK = "locate"


def generate(rng: random.Random, level: Level) -> Problem:
    count = rng.randint(2, 4 + level.more_images)
    k = rng.randrange(count)
    target = random_look(rng, level)
    scenes = []
    for index in range(count):
        n = object_count(rng, level)
        also_here = index == k or rng.random() < 0.5
        looks = ([target] if also_here else []) + distractor_looks(target, n - int(also_here), rng, level)
        scenes.append(random_scene(looks, rng, level))
    phrase = name(target, [o.look for s in scenes for o in s.objects])
    question = LOCATE.format(expr=phrase.removeprefix("the "), k=k + 1)
    chain = f"In image {k + 1}, {{obj}} is at the {{where}}."
    return object_one_problem(TASK, level, map(SceneImage, scenes), question, phrase, chain, target_image=k)
