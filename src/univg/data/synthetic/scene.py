"""The scene model of the synthetic world: which objects exist, how they look and where they are.

Scenes are resolution-free (centres and sizes are fractions of the image side), so one scene renders
at any image size; the renderer turns them into pixels and reads the exact boxes back from what it
drew. Everything random takes an explicit `random.Random`, so a seed fixes the whole world.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from univg.data.synthetic.levels import Level

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
    "cyan": (40, 200, 210),
}
# Light neutral grounds: every object colour, texture shade and the occluder stand out from each.
BACKGROUNDS = ((236, 236, 230), (214, 214, 214), (196, 200, 206))
OCCLUDER_COLOUR = (118, 100, 84)
GAP = 0.03  # least space between two placed objects (about 3 pixels at 112 px)
PLACE_TRIES = 300

Rect = tuple[float, float, float, float]


class PlacementError(RuntimeError):
    """The objects asked for did not fit; generators catch it and draw a new scene."""


@dataclass(frozen=True)
class Look:
    """What tells objects apart: the identity a question or a chain names."""

    colour: str
    shape: str
    texture: str = "solid"

    def phrase(self, texture_word: bool = False) -> str:
        """'red circle', 'striped red circle'; `texture_word` also says 'plain' for solid ones."""
        words = [self.colour, self.shape]
        if self.texture != "solid":
            words.insert(0, self.texture)
        elif texture_word:
            words.insert(0, "plain")
        return " ".join(words)


@dataclass(frozen=True)
class Obj:
    """One object: a look, a stable id (the same physical object keeps it across views) and a place."""

    id: int
    look: Look
    cx: float
    cy: float
    size: float  # side of its bounding square, as a fraction of the image side

    @property
    def extent(self) -> Rect:
        half = self.size / 2
        return (self.cx - half, self.cy - half, self.cx + half, self.cy + half)


@dataclass(frozen=True)
class Scene:
    """Objects in drawing order over a plain background, plus occluding posts drawn on top."""

    objects: tuple[Obj, ...]
    background: tuple[int, int, int]
    occluders: tuple[Rect, ...] = ()

    def get(self, obj_id: int) -> Obj:
        for obj in self.objects:
            if obj.id == obj_id:
                return obj
        raise KeyError(obj_id)

    def without(self, obj_id: int) -> Scene:
        return replace(self, objects=tuple(o for o in self.objects if o.id != obj_id))

    def with_look(self, obj_id: int, look: Look) -> Scene:
        """This scene with object `obj_id` wearing another look (what a difference task changes)."""
        return replace(
            self, objects=tuple(replace(o, look=look) if o.id == obj_id else o for o in self.objects)
        )

    def viewed(self, camera: Camera) -> Scene:
        """The scene seen by a camera that zooms by `scale` about the centre, then shifts."""
        moved = tuple(
            replace(
                o,
                cx=(o.cx - 0.5) * camera.scale + 0.5 + camera.dx,
                cy=(o.cy - 0.5) * camera.scale + 0.5 + camera.dy,
                size=o.size * camera.scale,
            )
            for o in self.objects
        )
        return replace(self, objects=moved)


@dataclass(frozen=True)
class Camera:
    """A zoom about the image centre followed by a shift, both in fractions of the image side."""

    scale: float
    dx: float
    dy: float


def random_look(rng: random.Random, level: Level, avoid: Iterable[Look] = ()) -> Look:
    """A look drawn uniformly from the level's vocabulary, never one in `avoid`."""
    banned = set(avoid)
    choices = [
        Look(c, s, t) for c in COLOURS for s in SHAPES for t in level.textures if Look(c, s, t) not in banned
    ]
    return rng.choice(choices)


def similar_look(look: Look, rng: random.Random, level: Level) -> Look:
    """A look that differs from `look` in exactly one attribute: the near-miss distractor."""
    attributes = ["colour", "shape"] + (["texture"] if len(level.textures) > 1 else [])
    attribute = rng.choice(attributes)
    if attribute == "colour":
        return replace(look, colour=rng.choice([c for c in COLOURS if c != look.colour]))
    if attribute == "shape":
        return replace(look, shape=rng.choice([s for s in SHAPES if s != look.shape]))
    return replace(look, texture=rng.choice([t for t in level.textures if t != look.texture]))


def distractor_looks(
    target: Look, count: int, rng: random.Random, level: Level, avoid: Iterable[Look] = ()
) -> list[Look]:
    """Looks for distractors: near misses with the level's `similar` chance, never the target's look."""
    banned = {target, *avoid}
    looks = []
    for _ in range(count):
        look = similar_look(target, rng, level) if rng.random() < level.similar else None
        if look is None or look in banned:
            look = random_look(rng, level, banned)
        looks.append(look)
    return looks


def with_distractors(target: Look, count: int, rng: random.Random, level: Level) -> list[Look]:
    """`count` looks, `target` first and its distractors after: placed in this order, the target is
    object 1 (what a Problem's `target` names)."""
    return [target, *distractor_looks(target, count - 1, rng, level)]


def target_and_distractors(count: int, rng: random.Random, level: Level) -> list[Look]:
    """`with_distractors` for a target drawn at random."""
    return with_distractors(random_look(rng, level), count, rng, level)


def object_count(rng: random.Random, level: Level) -> int:
    """Objects in one scene, target included (at least two: a target never stands alone)."""
    return max(2, rng.randint(*level.objects))


def overlaps(a: Rect, b: Rect, gap: float) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def inside(rect: Rect) -> bool:
    return rect[0] >= 0 and rect[1] >= 0 and rect[2] <= 1 and rect[3] <= 1


def place(
    looks: Sequence[Look],
    rng: random.Random,
    sizes: Sequence[float],
    *,
    margin: float = 0.02,
) -> tuple[Obj, ...]:
    """Objects with ids 1, 2, ... at random places, at least `margin` inside the image and apart.

    The gap keeps every object's pixels separate, so each box is exactly one object's bounding pixels.
    """
    placed: list[Obj] = []
    for offset, (look, size) in enumerate(zip(looks, sizes, strict=True)):
        for _ in range(PLACE_TRIES):
            half = size / 2
            cx = rng.uniform(margin + half, 1 - margin - half)
            cy = rng.uniform(margin + half, 1 - margin - half)
            candidate = Obj(offset + 1, look, cx, cy, size)
            if not any(overlaps(candidate.extent, o.extent, GAP) for o in placed):
                placed.append(candidate)
                break
        else:
            raise PlacementError(f"could not place {len(looks)} objects")
    return tuple(placed)


def random_sizes(count: int, rng: random.Random, level: Level) -> list[float]:
    return [rng.uniform(*level.size) for _ in range(count)]


def random_scene(looks: Sequence[Look], rng: random.Random, level: Level, *, margin: float = 0.02) -> Scene:
    """Objects of these looks at the level's sizes, placed at random on a random ground."""
    return Scene(place(looks, rng, random_sizes(len(looks), rng, level), margin=margin), background(rng))


def background(rng: random.Random) -> tuple[int, int, int]:
    return rng.choice(BACKGROUNDS)


def random_camera(rng: random.Random, level: Level) -> Camera:
    """A camera move within the level's motion range: harder levels move and zoom more."""
    zoom = level.motion / 2
    return Camera(
        scale=rng.uniform(1 - zoom, 1 + zoom),
        dx=rng.uniform(-level.motion, level.motion),
        dy=rng.uniform(-level.motion, level.motion),
    )


def moved_enough(a: Obj, b: Obj) -> bool:
    """True when copying `a`'s box cannot answer for `b`: the centre moved at least half a size."""
    return math.dist((a.cx, a.cy), (b.cx, b.cy)) >= 0.5 * max(a.size, b.size)


def occluder_over(obj: Obj, rng: random.Random) -> Rect:
    """A full-height post hiding 25-45% of `obj`'s width from one side (its box is what stays visible)."""
    width = obj.size * rng.uniform(0.25, 0.45)
    x0, _, x1, _ = obj.extent
    if rng.random() < 0.5:
        return (x1 - width, 0.0, x1 + width, 1.0)
    return (x0 - width, 0.0, x0 + width, 1.0)


def ordinal(k: int) -> str:
    """'1st', '2nd', '3rd', '4th' for the chains (the questions copy MIG-Bench's '1th')."""
    if k % 100 in (11, 12, 13):
        return f"{k}th"
    return f"{k}{({1: 'st', 2: 'nd', 3: 'rd'}).get(k % 10, 'th')}"


def name(look: Look, others: Iterable[Look]) -> str:
    """'the red circle'; says the texture ('plain', 'striped') when another object differs only by it."""
    twin = any(
        o.colour == look.colour and o.shape == look.shape and o.texture != look.texture for o in others
    )
    return f"the {look.phrase(texture_word=twin)}"


CHANGES = ("recoloured", "reshaped")


def changed_look(look: Look, change: str, rng: random.Random) -> Look:
    """The look of an object after a difference task changed it ('recoloured' or 'reshaped')."""
    if change == "recoloured":
        return replace(look, colour=rng.choice([c for c in COLOURS if c != look.colour]))
    if change == "reshaped":
        return replace(look, shape=rng.choice([s for s in SHAPES if s != look.shape]))
    raise ValueError(f"unknown change {change!r}; expected one of {CHANGES}")


def changed_scenes(scene: Scene, variant: str, rng: random.Random) -> tuple[Scene, Scene]:
    """`scene` before and after a difference task's change to object 1: 'added', 'removed' or one of
    CHANGES."""
    if variant == "added":
        return scene.without(1), scene
    if variant == "removed":
        return scene, scene.without(1)
    return scene, scene.with_look(1, changed_look(scene.get(1).look, variant, rng))
