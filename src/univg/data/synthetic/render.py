"""Drawing problems into pixels, and reading exact boxes back from what was drawn.

Shapes are rasterised without anti-aliasing and every pixel is labelled with the object that painted
it last, so a box is the bounding rectangle of an object's visible pixels: exact by construction, even
when a camera move pushes an object half out of frame or a post hides part of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from univg.core.boxes import from_normalized, iou
from univg.data.synthetic.problem import MARKED_BOX, CropImage, Problem, SceneImage
from univg.data.synthetic.scene import COLOURS, OCCLUDER_COLOUR, Obj, Rect, Scene, name

BoxTuple = tuple[float, float, float, float]
MARKER_COLOUR = (255, 0, 0)
OCCLUDER_LABEL = -1
SHADE = 0.45  # texture marks are the object's colour darkened to this fraction
# The ground is tinted by where it is: red grows from left to right, blue from top to bottom, by up to
# RAMP levels. Qwen2-VL's vision encoder has no absolute position embedding (only rotary attention), so
# a model has to learn where a patch lies; a large model learns it from its data, a 1M-parameter copy
# trained for minutes hardly does. The ramp lets it see position in every patch that shows ground.
RAMP = 36


@dataclass
class Rendered:
    """A drawn problem: the images, the final question text, the answer box and what else is there.

    `decoys` are (phrase, box) of the other things in the target image, which a wrong chain may name;
    `distractors` counts the other objects visible in the target image.
    """

    images: list[Image.Image]
    question: str
    box: BoxTuple
    decoys: list[tuple[str, BoxTuple]]
    distractors: int


def pixel_span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """First and last pixel (inclusive) of the span lo..hi of a `size`-pixel side."""
    first = round(lo * size)
    return first, max(first, round(hi * size) - 1)


def _shape_mask(obj: Obj, size: int) -> np.ndarray:
    x0, x1 = pixel_span(obj.extent[0], obj.extent[2], size)
    y0, y1 = pixel_span(obj.extent[1], obj.extent[3], size)
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    shape = obj.look.shape
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=255)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=255)
    elif shape == "triangle":
        draw.polygon([(mx, y0), (x1, y1), (x0, y1)], fill=255)
    elif shape == "diamond":
        draw.polygon([(mx, y0), (x1, my), (mx, y1), (x0, my)], fill=255)
    elif shape == "cross":
        arm = max(2, round((x1 - x0 + 1) / 3))
        draw.rectangle((x0, round(my - arm / 2), x1, round(my - arm / 2) + arm - 1), fill=255)
        draw.rectangle((round(mx - arm / 2), y0, round(mx - arm / 2) + arm - 1, y1), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(canvas) > 0


def texture_period(size: int) -> int:
    return max(2, round(size / 36))


def ground(colour: tuple[int, int, int], size: int) -> np.ndarray:
    """The background of a `size`-pixel image: `colour` with the position ramp (see RAMP)."""
    ramp = np.linspace(-RAMP / 2, RAMP / 2, size)
    rgb = np.empty((size, size, 3), dtype=np.float64)
    rgb[...] = colour
    rgb[..., 0] += ramp[None, :]
    rgb[..., 2] += ramp[:, None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def render_scene(scene: Scene, size: int) -> tuple[Image.Image, np.ndarray]:
    """The scene as an RGB image and a label map (object id per pixel, 0 background, -1 occluder)."""
    rgb = np.empty((size, size, 3), dtype=np.uint8)
    rgb[...] = ground(scene.background, size)
    labels = np.zeros((size, size), dtype=np.int16)
    period = texture_period(size)
    for obj in scene.objects:
        ys, xs = np.nonzero(_shape_mask(obj, size))
        fill = np.array(COLOURS[obj.look.colour], dtype=np.float64)
        colours = np.tile(fill.astype(np.uint8), (len(xs), 1))
        # Texture phase follows the object, so a moved object keeps its pattern.
        u = (xs - round(obj.extent[0] * size)) // period
        v = (ys - round(obj.extent[1] * size)) // period
        if obj.look.texture == "striped":
            marks = v % 2 == 1
        elif obj.look.texture == "dotted":
            marks = (u % 2 == 1) & (v % 2 == 1)
        else:
            marks = np.zeros(len(xs), dtype=bool)
        colours[marks] = (fill * SHADE).astype(np.uint8)
        rgb[ys, xs] = colours
        labels[ys, xs] = obj.id
    for rect in scene.occluders:
        x0, x1 = pixel_span(max(0.0, rect[0]), min(1.0, rect[2]), size)
        y0, y1 = pixel_span(max(0.0, rect[1]), min(1.0, rect[3]), size)
        rgb[y0 : y1 + 1, x0 : x1 + 1] = OCCLUDER_COLOUR
        labels[y0 : y1 + 1, x0 : x1 + 1] = OCCLUDER_LABEL
    return Image.fromarray(rgb, mode="RGB"), labels


def mask_box(mask: np.ndarray) -> BoxTuple | None:
    """The canonical box of a pixel mask's bounding pixels, or None when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    height, width = mask.shape
    return (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)


def _pixel_rect(rect: Rect, size: int) -> tuple[int, int, int, int]:
    """A crop rectangle in pixels (end exclusive), never empty."""
    x0, y0 = round(rect[0] * size), round(rect[1] * size)
    return x0, y0, max(x0 + 1, round(rect[2] * size)), max(y0 + 1, round(rect[3] * size))


def _crop_box(rect: Rect, size: int) -> BoxTuple:
    """The canonical box of the pixels a crop rectangle cuts out."""
    x0, y0, x1, y1 = _pixel_rect(rect, size)
    return (x0 / size, y0 / size, x1 / size, y1 / size)


def _draw_marker(image: Image.Image, box: BoxTuple) -> Image.Image:
    """The image with a 2-pixel red frame just outside `box`, as MIG-Bench marks its queries."""
    size = image.width
    marked = image.copy()
    x0, y0 = round(box[0] * size), round(box[1] * size)
    x1, y1 = round(box[2] * size) - 1, round(box[3] * size) - 1
    ImageDraw.Draw(marked).rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), outline=MARKER_COLOUR, width=2)
    return marked


def marked_box_text(box: BoxTuple) -> str:
    """A box as MIG-Bench writes it inside a question: Qwen2-VL 0..1000 integers, no spaces."""
    x1, y1, x2, y2 = from_normalized(box, "qwen2vl")
    return f"<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"


def render_problem(problem: Problem, size: int) -> Rendered:
    """Draw every image of a problem and derive the answer box and decoys from the pixels."""
    clean: list[Image.Image] = []
    shown: list[Image.Image] = []
    labels: list[np.ndarray | None] = []
    question = problem.question
    for spec in problem.images:
        if isinstance(spec, SceneImage):
            image, label = render_scene(spec.scene, size)
            clean.append(image)
            labels.append(label)
            if spec.marker is None:
                shown.append(image)
                continue
            marked = mask_box(label == spec.marker)
            if marked is None:
                raise ValueError(f"{problem.task}: the marked object is not visible")
            question = question.replace(MARKED_BOX, marked_box_text(marked))
            shown.append(_draw_marker(image, marked))
        else:
            x0, y0, x1, y1 = _pixel_rect(spec.rect, size)
            crop = clean[spec.source].crop((x0, y0, x1, y1)).resize((size, size), Image.Resampling.NEAREST)
            clean.append(crop)
            shown.append(crop)
            labels.append(None)
    box = _answer_box(problem, labels, size)
    target_labels = labels[problem.target_image]
    if target_labels is None:
        raise ValueError(f"{problem.task}: the target image must show a scene")
    scene = problem.scene_of(problem.target_image)
    looks = [o.look for o in scene.objects]
    decoys: list[tuple[str, BoxTuple]] = []
    for index, spec in enumerate(problem.images):
        if isinstance(spec, CropImage) and index != problem.crop:
            decoys.append((name(scene.get(spec.subject).look, looks), _crop_box(spec.rect, size)))
    visible = 0
    for obj in scene.objects:
        found = mask_box(target_labels == obj.id)
        if obj.id == problem.target or found is None:
            continue
        visible += 1
        decoys.append((name(obj.look, looks), found))
    decoys = [(phrase, decoy) for phrase, decoy in decoys if iou(decoy, box) < 0.5]
    return Rendered(images=shown, question=question, box=box, decoys=decoys, distractors=visible)


def _answer_box(problem: Problem, labels: list[np.ndarray | None], size: int) -> BoxTuple:
    if problem.crop is not None:
        spec = problem.images[problem.crop]
        if not isinstance(spec, CropImage):
            raise ValueError(f"{problem.task}: image {problem.crop} is not a crop")
        return _crop_box(spec.rect, size)
    maps = [m for m in labels if m is not None] if problem.union else [labels[problem.target_image]]
    found = mask_box(np.logical_or.reduce([m == problem.target for m in maps if m is not None]))
    if found is None:
        raise ValueError(f"{problem.task}: the target is not visible in image {problem.target_image}")
    return found
