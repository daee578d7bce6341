"""Difficulty levels of the synthetic world: what makes a problem easy, medium or hard.

Three knobs the paper's difficulty buckets respond to: how many distractors stand beside the target,
how small the objects are, and how similar the distractors are to it (same colour or same shape).
Multi-image tasks also get more images, larger camera moves and occlusion as the level rises.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LEVEL_NAMES = ("easy", "medium", "hard")
TEXTURES = ("solid", "striped", "dotted")
DIFFICULTIES = (*LEVEL_NAMES, "mixed")


@dataclass(frozen=True)
class Level:
    name: str
    objects: tuple[int, int]  # objects per scene, target included
    size: tuple[float, float]  # object side, fraction of the image side
    similar: float  # chance that a distractor differs from the target in one attribute only
    textures: tuple[str, ...]  # textures objects may wear
    more_images: int  # images added to a task's smallest image count
    motion: float  # largest camera shift / per-frame speed, fraction of the image side
    occlusion: float  # chance that the target is partly hidden (multi-view, tracking)


LEVELS: dict[str, Level] = {
    "easy": Level("easy", (2, 3), (0.26, 0.36), 0.0, TEXTURES[:1], 0, 0.2, 0.0),
    "medium": Level("medium", (3, 4), (0.18, 0.28), 0.5, TEXTURES[:2], 1, 0.3, 0.3),
    "hard": Level("hard", (4, 6), (0.12, 0.22), 0.9, TEXTURES, 2, 0.4, 0.5),
}


def pick_level(difficulty: str, rng: random.Random) -> Level:
    """The level for one sample; 'mixed' draws easy, medium or hard with equal chance."""
    if difficulty == "mixed":
        return LEVELS[rng.choice(LEVEL_NAMES)]
    try:
        return LEVELS[difficulty]
    except KeyError:
        raise ValueError(f"unknown difficulty {difficulty!r}; expected one of {DIFFICULTIES}") from None
