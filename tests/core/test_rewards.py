import pytest

from univg.core.parsing import read_box
from univg.core.rewards import (
    REWARD_FUNCTIONS,
    accuracy_reward,
    box_iou,
    completion_text,
    format_loose_reward,
    format_reward,
)

GT = [0.1, 0.2, 0.5, 0.6]
EXACT = "<think>ok</think><answer>(100, 200), (500, 600)</answer>"
HALF = "<think>ok</think><answer>(100, 200), (300, 600)</answer>"  # half the gt's width
NO_FORMAT = "the box is (100, 200), (500, 600)"


def conversational(text):
    return [{"role": "assistant", "content": text}]


def conversational_parts(text):
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


@pytest.mark.parametrize("shape", [str, conversational, conversational_parts])
def test_accuracy_and_format_on_both_completion_shapes(shape):
    completions = [shape(EXACT), shape(HALF), shape(NO_FORMAT), shape("")]
    boxes = [GT] * 4
    assert accuracy_reward(completions, solution=boxes) == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert format_reward(completions, solution=boxes) == [1.0, 1.0, 0.0, 0.0]


def test_accuracy_uses_per_sample_coordinate_system():
    completions = [
        "<think>a</think><answer>(0.1, 0.2), (0.5, 0.6)</answer>",
        "<think>a</think><answer>(20, 20), (100, 60)</answer>",  # pixels of a 200x100 image
        EXACT,
    ]
    rewards = accuracy_reward(
        completions,
        solution=[GT, GT, GT],
        coords=["normalized", "pixels", None],
        image_size=[None, [200, 100], None],
        task=["ignored column"] * 3,
    )
    assert rewards == pytest.approx([1.0, 1.0, 1.0])


def test_pixels_without_size_scores_zero_instead_of_crashing():
    assert box_iou(EXACT, GT, "pixels", None) == 0.0


def test_answer_mode_ignores_boxes_in_think():
    text = "<think>(100, 200), (500, 600)</think><answer>(0, 0), (10, 10)</answer>"
    assert accuracy_reward([text], solution=[GT]) == [0.0]


def test_completion_text_of_odd_shapes():
    assert completion_text(None) == ""
    assert completion_text({"content": [{"type": "image"}, {"type": "text", "text": "x"}]}) == "x"


def test_registry_names():
    assert REWARD_FUNCTIONS == {
        "accuracy": accuracy_reward,
        "format": format_reward,
        "format_loose": format_loose_reward,
    }


def test_format_rewards_strict_is_the_papers_loose_also_takes_tags_and_lists():
    completions = [
        EXACT,
        "<think>ok</think><answer><|box_start|>(100,200),(500,600)<|box_end|></answer>",
        "<think>ok</think><answer>[100, 200, 500, 600]</answer>",
        NO_FORMAT,
    ]
    assert format_reward(completions) == [1.0, 0.0, 0.0, 0.0]
    assert format_loose_reward(completions) == [1.0, 1.0, 1.0, 0.0]


def test_read_box_converts_to_canonical_or_gives_none():
    assert read_box(EXACT) == pytest.approx((0.1, 0.2, 0.5, 0.6))
    assert read_box("<answer>(20, 20), (100, 60)</answer>", "answer", "pixels", (200, 100)) == pytest.approx(
        (0.1, 0.2, 0.5, 0.6)
    )
    assert read_box(EXACT, "answer", "pixels", None) is None
    assert read_box(NO_FORMAT, "answer") is None
    assert read_box(NO_FORMAT, "first") == pytest.approx((0.1, 0.2, 0.5, 0.6))
