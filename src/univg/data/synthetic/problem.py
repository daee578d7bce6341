"""A grounding problem before it is drawn: the images to render, the question, the target, the facts.

Generators build `Problem`s from scenes; the renderer turns one into pixels and an exact box; the
teacher turns its facts into a chain of thought. Keeping the three apart lets the tests redraw any
image without its target and check the box against the pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from univg.data.synthetic.levels import Level
from univg.data.synthetic.scene import Obj, Rect, Scene

# Stands in the question for the marked object's box, which is only known once the image is drawn.
MARKED_BOX = "<marked-box>"


@dataclass(frozen=True)
class SceneImage:
    """An image that shows a scene; `marker` names the object outlined with a red box, if any."""

    scene: Scene
    marker: int | None = None


@dataclass(frozen=True)
class CropImage:
    """A region picture: the rectangle `rect` of image `source`, scaled up to the full image size.

    `subject` is the id of the object the region was cut around (what a chain says the region shows).
    """

    source: int
    rect: Rect
    subject: int


ImageSpec = SceneImage | CropImage


@dataclass(frozen=True)
class Problem:
    """Everything needed to draw one sample and to reason about it.

    The answer is the box of object `target` in image `target_image`, except for two tasks: with
    `crop` set (region) it is the rectangle that image `crop` was cut from; with `union` (diff, whose
    two images share one geometry) it covers the target in every image, added, removed or recoloured.
    `chain` is the teacher's template: `{obj}` becomes `phrase` (or a decoy's), `{where}` a place word.
    """

    task: str
    level: str
    images: tuple[ImageSpec, ...]
    question: str
    target_image: int
    target: int
    phrase: str
    chain: str
    crop: int | None = None
    union: bool = False
    variant: str = ""

    def scene_of(self, index: int) -> Scene:
        """The scene image `index` shows (a crop shows its source's scene)."""
        spec = self.images[index]
        if isinstance(spec, CropImage):
            spec = self.images[spec.source]
        if not isinstance(spec, SceneImage):
            raise TypeError(f"image {index} is a crop of a crop; crops are cut from scene images")
        return spec.scene

    def target_object(self) -> Obj:
        """The target as drawn in the target image, or where it is drawn when absent there (diff 'added')."""
        for index in (self.target_image, *range(len(self.images))):
            spec = self.images[index]
            if isinstance(spec, SceneImage):
                for obj in spec.scene.objects:
                    if obj.id == self.target:
                        return obj
        raise ValueError(f"{self.task}: target {self.target} is in no image")


def object_one_problem(
    task: str,
    level: Level,
    images: Iterable[ImageSpec],
    question: str,
    phrase: str,
    chain: str,
    *,
    target_image: int,
    crop: int | None = None,
    union: bool = False,
    variant: str = "",
) -> Problem:
    """A problem whose answer is object 1 of image `target_image`: the target of every task but reasoning,
    as scenes number their objects in the order of their looks and tasks give the target's look first."""
    return Problem(
        task=task,
        level=level.name,
        images=tuple(images),
        question=question,
        target_image=target_image,
        target=1,
        phrase=phrase,
        chain=chain,
        crop=crop,
        union=union,
        variant=variant,
    )


def marked_then_found(
    task: str, level: Level, scenes: Sequence[Scene], question: str, answer_image: int, phrase: str
) -> Problem:
    """Image 1 marks the target and the answer is the target in image `answer_image` (its number, one
    more, fills `question`'s '{k}'): the tasks that follow one object across views or frames."""
    images = (SceneImage(scenes[0], marker=1), *(SceneImage(scene) for scene in scenes[1:]))
    number = answer_image + 1
    chain = f"The marked object is {{obj}}; in image {number} it is at the {{where}}."
    return object_one_problem(
        task, level, images, question.format(k=number), phrase, chain, target_image=answer_image
    )
