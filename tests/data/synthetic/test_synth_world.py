"""What the world promises: difficulty that means something, and multi-image tasks that need every image."""

from __future__ import annotations

import random
import re
import statistics

import pytest

from univg.core.boxes import iou, to_normalized
from univg.data.synthetic import LEVELS, MIG_TASKS, make_problem
from univg.data.synthetic.levels import LEVEL_NAMES
from univg.data.synthetic.problem import SceneImage
from univg.data.synthetic.render import render_problem

SIZE = 112
N = 40


def draw(task: str, level: str, n: int = N, seed: str = ""):
    rng = random.Random(f"world/{task}/{level}/{seed}")
    for _ in range(n):
        problem = make_problem(task, rng, LEVELS[level])
        yield problem, render_problem(problem, SIZE)


def similar_share(problem) -> float:
    """Share of distractors in the target image with the target's colour or shape."""
    look = problem.target_object().look
    others = [o for o in problem.scene_of(problem.target_image).objects if o.id != problem.target]
    return sum(o.look.colour == look.colour or o.look.shape == look.shape for o in others) / len(others)


@pytest.mark.parametrize("task", ["common_object", "multi_view", "refer_grounding", "referring", "diff"])
def test_harder_levels_have_more_distractors_smaller_and_more_similar_objects(task):
    stats = {}
    for level in LEVEL_NAMES:
        drawn = list(draw(task, level))
        stats[level] = (
            statistics.mean(r.distractors for _, r in drawn),
            statistics.mean((r.box[2] - r.box[0]) * (r.box[3] - r.box[1]) for _, r in drawn),
            statistics.mean(similar_share(p) for p, _ in drawn),
        )
    (d_easy, a_easy, s_easy), (d_med, a_med, s_med), (d_hard, a_hard, s_hard) = (
        stats[n] for n in LEVEL_NAMES
    )
    assert d_easy + 0.5 < d_med < d_hard - 0.5
    assert a_easy > 1.4 * a_med > 1.4 * 1.4 * a_hard
    assert s_easy + 0.2 < s_med < s_hard


def test_multi_image_tasks_always_have_a_distractor_beside_the_target():
    for task in (t for t in MIG_TASKS if t not in ("diff", "region")):
        for level in LEVEL_NAMES:
            assert all(r.distractors >= 1 for _, r in draw(task, level, 15))


@pytest.mark.parametrize("task", ["multi_view", "object_tracking"])
def test_copying_the_marked_box_from_the_question_fails(task):
    hits = []
    for level in LEVEL_NAMES:
        for _, rendered in draw(task, level):
            found = re.search(r"<\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)", rendered.question)
            copied = to_normalized([int(v) for v in found.groups()], "qwen2vl")
            hits.append(iou(copied, rendered.box) >= 0.5)
    assert sum(hits) / len(hits) < 0.05


def test_common_object_is_the_only_look_in_every_image():
    for problem, _ in draw("common_object", "hard"):
        looks = [{o.look for o in spec.scene.objects} for spec in problem.images]
        assert set.intersection(*looks) == {problem.target_object().look}


def test_group_grounding_target_look_is_in_one_image_only():
    for problem, _ in draw("group_grounding", "hard"):
        holders = [
            i
            for i, s in enumerate(problem.images)
            if problem.target_object().look in {o.look for o in s.scene.objects}
        ]
        assert holders == [problem.target_image]


def test_correspondence_counterpart_is_the_only_object_of_the_marked_shape():
    for problem, _ in draw("correspondence", "hard"):
        marked_spec = problem.images[0]
        assert isinstance(marked_spec, SceneImage)
        marked = marked_spec.scene.get(marked_spec.marker).look
        second = problem.scene_of(1).objects
        assert [o.id for o in second if o.look.shape == marked.shape] == [problem.target]
        assert problem.target_object().look.colour != marked.colour


def test_view_diff_cameras_move_and_the_change_is_one_object():
    for problem, _ in draw("view_diff", "medium"):
        first, second = (spec.scene for spec in problem.images)
        ids_first = {o.id: o for o in first.objects}
        moved = [
            o
            for o in second.objects
            if o.id in ids_first and (o.cx, o.cy) != (ids_first[o.id].cx, ids_first[o.id].cy)
        ]
        assert moved, "the camera did not move"
        changed = [o.id for o in second.objects if o.id not in ids_first or o.look != ids_first[o.id].look]
        assert changed == [problem.target]


def test_reasoning_puzzles_have_one_answer():
    for problem, _ in draw("reasoning", "hard", 60):
        first, second = problem.scene_of(0).objects, problem.scene_of(1).objects
        answer = problem.target_object()
        if problem.variant == "count":
            ordered = sorted(second, key=lambda o: o.cx)
            assert ordered[len(first) - 1].id == answer.id
        elif problem.variant == "majority":
            colours = [o.look.colour for o in first]
            top = max(set(colours), key=colours.count)
            counts = sorted(colours.count(c) for c in set(colours))
            assert counts[-1] > counts[-2]
            assert [o.id for o in second if o.look.colour == top] == [answer.id]
        else:
            assert [o.id for o in second if o.look not in {f.look for f in first}] == [answer.id]
