"""The rule-based teacher: a short chain of thought written from the scene facts.

A chain names what was compared and matched (the marked object's look, the object every image shares,
what changed) and where the target lies on a 3 x 3 grid, in one or two sentences: a tiny model has
little context and decodes slowly on a CPU, and the coarse place word is a step it can actually use.
The full response is `univg.data.prompts.answer_text(box, think=chain)`.

It also writes deliberately wrong chains, so CoT selection (three chains, keep the best) and the
verification step have something real to reject: each names a decoy in the target image or a wrong
place, and its box has IoU < 0.5 with the truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from univg.core.boxes import iou
from univg.data.synthetic.problem import Problem
from univg.data.synthetic.render import BoxTuple, Rendered

WRONG_KINDS = ("object", "location")
_ROWS = ("top", "", "bottom")
_COLUMNS = ("left", "", "right")


@dataclass(frozen=True)
class WrongChain:
    """A chain that reasons its way to the wrong box: `kind` says how it went wrong."""

    kind: str
    cot: str
    box: BoxTuple

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "cot": self.cot, "box": list(self.box)}


def where(box: BoxTuple) -> str:
    """The box centre's cell of a 3 x 3 grid: 'top left', 'top', ..., 'center', ..., 'bottom right'."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    row = _ROWS[min(2, int(cy * 3))]
    column = _COLUMNS[min(2, int(cx * 3))]
    return " ".join(word for word in (row, column) if word) or "center"


def _write(template: str, phrase: str, box: BoxTuple) -> str:
    text = template.format(obj=phrase, where=where(box))
    return text[0].upper() + text[1:]


def chain(problem: Problem, rendered: Rendered) -> str:
    """The teacher's chain of thought for a drawn problem."""
    return _write(problem.chain, problem.phrase, rendered.box)


def _elsewhere(box: BoxTuple) -> list[BoxTuple]:
    """Corner boxes of the target's size (at most 0.45) and of 0.25, none with IoU >= 0.5 or its place."""
    found: dict[BoxTuple, None] = {}
    for width, height in ((min(box[2] - box[0], 0.45), min(box[3] - box[1], 0.45)), (0.25, 0.25)):
        for x0 in (0.0, 1.0 - width):
            for y0 in (0.0, 1.0 - height):
                candidate = (x0, y0, x0 + width, y0 + height)
                if iou(candidate, box) < 0.5 and where(candidate) != where(box):
                    found[candidate] = None
    return list(found)


def wrong_chains(problem: Problem, rendered: Rendered, rng: random.Random, count: int) -> list[WrongChain]:
    """Up to `count` wrong chains, alternating a decoy object and a wrong place while decoys last."""
    decoys = list(rendered.decoys)
    places = _elsewhere(rendered.box)
    rng.shuffle(decoys)
    rng.shuffle(places)
    wrong: list[WrongChain] = []
    for index in range(count):
        if decoys and (WRONG_KINDS[index % 2] == "object" or not places):
            phrase, box = decoys.pop()
            wrong.append(WrongChain("object", _write(problem.chain, phrase, box), box))
        elif places:
            box = places.pop()
            wrong.append(WrongChain("location", _write(problem.chain, problem.phrase, box), box))
    return wrong
