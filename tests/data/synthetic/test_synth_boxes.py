"""Every generator's answer box against the rendered pixels, checked without the renderer's label map."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from PIL import Image

from univg.core.boxes import to_normalized
from univg.data.synthetic import LEVELS, TASKS, make_problem
from univg.data.synthetic.levels import LEVEL_NAMES
from univg.data.synthetic.problem import CropImage, SceneImage
from univg.data.synthetic.render import MARKER_COLOUR, SHADE, render_problem, render_scene
from univg.data.synthetic.scene import BACKGROUNDS, COLOURS, OCCLUDER_COLOUR

SIZE = 112
PER_CASE = 8
BOX_IN_QUESTION = re.compile(r"<\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)<\|box_end\|>")


def pixel_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    assert len(xs), "no pixel differs"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def assert_within_one_pixel(box, pixels, size=SIZE):
    got = [round(v * size) for v in box]
    assert max(abs(a - b) for a, b in zip(got, pixels, strict=True)) <= 1, (got, pixels)


def changed(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.any(np.asarray(a) != np.asarray(b), axis=2)


def cases():
    for task in TASKS:
        for level in LEVEL_NAMES:
            yield task, level


@pytest.mark.parametrize(("task", "level"), list(cases()))
def test_answer_box_is_the_targets_bounding_pixels(task, level):
    rng = random.Random(f"boxes/{task}/{level}")
    for _ in range(PER_CASE):
        problem = make_problem(task, rng, LEVELS[level])
        rendered = render_problem(problem, SIZE)
        shown = rendered.images
        if problem.crop is not None:
            # region: the region picture is exactly the answer rectangle of the source, scaled up.
            x0, y0, x1, y1 = (round(v * SIZE) for v in rendered.box)
            cut = shown[0].crop((x0, y0, x1, y1)).resize((SIZE, SIZE), Image.Resampling.NEAREST)
            assert np.array_equal(np.asarray(cut), np.asarray(shown[problem.crop]))
            continue
        if problem.union:
            # diff: the two images differ exactly inside the box.
            assert_within_one_pixel(rendered.box, pixel_bbox(changed(shown[0], shown[1])))
            continue
        # Everything else: redraw the target image without the target; what changes is the target
        # (a marked target image, in `marked`, is compared before its frame is drawn).
        spec = problem.images[problem.target_image]
        assert isinstance(spec, SceneImage) and (spec.marker is None or task == "marked")
        drawn = shown[problem.target_image] if spec.marker is None else render_scene(spec.scene, SIZE)[0]
        without, _ = render_scene(spec.scene.without(problem.target), SIZE)
        mask = changed(drawn, without)
        assert_within_one_pixel(rendered.box, pixel_bbox(mask))
        fill = COLOURS[spec.scene.get(problem.target).look.colour]
        allowed = {fill, tuple(int(c * SHADE) for c in fill)}
        seen = {tuple(p) for p in np.asarray(drawn)[mask]}
        assert seen <= allowed


@pytest.mark.parametrize("task", ["multi_view", "object_tracking", "correspondence", "marked"])
def test_marker_frames_the_marked_object_and_the_question_gives_its_box(task):
    rng = random.Random(f"marker/{task}")
    for level in LEVEL_NAMES:
        for _ in range(PER_CASE):
            problem = make_problem(task, rng, LEVELS[level])
            rendered = render_problem(problem, SIZE)
            spec = problem.images[0]
            assert isinstance(spec, SceneImage) and spec.marker is not None
            clean, _ = render_scene(spec.scene, SIZE)
            without, _ = render_scene(spec.scene.without(spec.marker), SIZE)
            x0, y0, x1, y1 = pixel_bbox(changed(clean, without))
            frame = np.asarray(rendered.images[0])
            red = np.all(frame == MARKER_COLOUR, axis=2)
            for x, y in ((x0 - 1, (y0 + y1) // 2), (x1, (y0 + y1) // 2), ((x0 + x1) // 2, y0 - 1)):
                if 0 <= x < SIZE and 0 <= y < SIZE:
                    assert red[y, x]
            found = BOX_IN_QUESTION.search(rendered.question)
            if task == "correspondence":
                assert found is None  # MIG-Bench's correspondence question gives no coordinates
                continue
            box = to_normalized([int(v) for v in found.groups()], "qwen2vl")
            assert_within_one_pixel(box, (x0, y0, x1, y1))


def test_crops_are_cut_from_scene_images_and_every_colour_is_distinct():
    rng = random.Random(0)
    problem = make_problem("region", rng, LEVELS["medium"])
    assert all(isinstance(s, CropImage) and s.source == 0 for s in problem.images[1:])
    shades = {tuple(int(c * SHADE) for c in fill) for fill in COLOURS.values()}
    palette = [*COLOURS.values(), *shades, *BACKGROUNDS, OCCLUDER_COLOUR, MARKER_COLOUR]
    assert len(set(palette)) == len(palette)


def test_boxes_scale_with_the_image_size():
    for size in (56, 224):
        rng = random.Random(size)
        problem = make_problem("refer_grounding", rng, LEVELS["easy"])
        rendered = render_problem(problem, size)
        assert all(image.size == (size, size) for image in rendered.images)
        spec = problem.images[1]
        without, _ = render_scene(spec.scene.without(problem.target), size)
        assert_within_one_pixel(rendered.box, pixel_bbox(changed(rendered.images[1], without)), size)
