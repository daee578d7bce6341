"""The synthetic world's language, for training a tokenizer that knows its words.

A byte-level BPE with a few hundred merges spells most words letter by letter, so a templated
question costs ~80 tokens; trained on this corpus every word of the world's questions and chains is
one token and sequences are about half as long, which halves the tiny model's training time per sample.
Only problems are drawn (no pixels), so the corpus is cheap to make.
"""

from __future__ import annotations

import random

from univg.data.synthetic.levels import LEVELS
from univg.data.synthetic.problem import MARKED_BOX
from univg.data.synthetic.tasks import TASKS, make_problem
from univg.data.synthetic.teacher import where

_PLACES = ((0.05, 0.05, 0.3, 0.3), (0.4, 0.4, 0.6, 0.6), (0.7, 0.1, 0.95, 0.3), (0.1, 0.7, 0.3, 0.95))


def language_corpus(per_task: int = 30, seed: int = 0) -> list[str]:
    """Questions and teacher chains of `per_task` problems of every task at every level."""
    rng = random.Random(f"univg-corpus/{seed}")
    lines: list[str] = []
    for task in TASKS:
        for index in range(per_task):
            level = LEVELS[("easy", "medium", "hard")[index % 3]]
            problem = make_problem(task, rng, level)
            box = _PLACES[index % len(_PLACES)]
            lines.append(problem.question.replace(MARKED_BOX, "(50,50),(300,300)"))
            chain = problem.chain.format(obj=problem.phrase, where=where(box))
            lines.append(chain[0].upper() + chain[1:])
    return lines
