"""Difficulty levels of the synthetic world: what makes a problem easy, medium or hard.

Three knobs the paper's difficulty buckets respond to: how many distractors stand beside the target,
how small the objects are, and how similar the distractors are to it (same colour or same shape).
Objects stay at least 0.16 of the image side (18 px at 112 px, about one of the 28-px cells a Qwen2-VL
image token covers): smaller ones fall inside one token, and no model of the demo's size locates them.
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
    "medium": Level("medium", (3, 4), (0.19, 0.29), 0.5, TEXTURES[:2], 1, 0.3, 0.3),
    "hard": Level("hard", (4, 6), (0.16, 0.23), 0.9, TEXTURES, 2, 0.4, 0.5),
}


def pick_level(difficulty: str, rng: random.Random) -> Level:
    """The level for one sample; 'mixed' draws easy, medium or hard with equal chance."""
    if difficulty == "mixed":
        return LEVELS[rng.choice(LEVEL_NAMES)]
    try:
        return LEVELS[difficulty]
    except KeyError:
        raise ValueError(f"unknown difficulty {difficulty!r}; expected one of {DIFFICULTIES}") from None
