import pytest
from hypothesis import given
from hypothesis import strategies as st

from univg.core.parsing import (
    answer_image,
    extract_answer_text,
    extract_box,
    extract_boxes,
    extract_target_image,
    image_references,
    is_loose_format,
    is_strict_format,
)

GOOD = "<think>the cat is left</think><answer>(10, 20), (300, 400)</answer>"

# (response, strict, answer, first)
CASES = [
    (GOOD, (10, 20, 300, 400), (10, 20, 300, 400), (10, 20, 300, 400)),
    (
        "  <think>\nx\n</think>\n <answer> (10,20),(300,400) </answer>\n",
        (10, 20, 300, 400),
        (10, 20, 300, 400),
        (10, 20, 300, 400),
    ),
    (
        "<think>at (1, 2), (3, 4)</think><answer>(10, 20), (300, 400)</answer>",
        (10, 20, 300, 400),
        (10, 20, 300, 400),
        (1, 2, 3, 4),
    ),
    ("<think>only here (1, 2), (3, 4)</think><answer>none</answer>", None, None, (1, 2, 3, 4)),
    ("<think>a</think><answer>(1, 2), (3, 4) and (5, 6), (7, 8)</answer>", None, (1, 2, 3, 4), (1, 2, 3, 4)),
    (
        "<think>a</think><answer>(0.1, 0.25), (0.5, .75)</answer>",
        (0.1, 0.25, 0.5, 0.75),
        (0.1, 0.25, 0.5, 0.75),
        (0.1, 0.25, 0.5, 0.75),
    ),
    ("<think>a</think><answer>(-5, 2), (3, 4)</answer>", (-5, 2, 3, 4), (-5, 2, 3, 4), (-5, 2, 3, 4)),
    (
        "<think>a</think><answer>(300, 400), (10, 20)</answer>",
        (300, 400, 10, 20),
        (300, 400, 10, 20),
        (300, 400, 10, 20),
    ),
    # looser than the paper's format: strict rejects them, the format_loose reward accepts them
    ("<think>a</think><answer>[10, 20, 300, 400]</answer>", None, (10, 20, 300, 400), (10, 20, 300, 400)),
    (
        "<think>a</think><answer><|box_start|>(10,20),(300,400)<|box_end|></answer>",
        None,
        (10, 20, 300, 400),
        (10, 20, 300, 400),
    ),
    (
        "<think>a</think><answer>the box (10, 20), (300, 400)</answer>",
        None,
        (10, 20, 300, 400),
        (10, 20, 300, 400),
    ),
    ("It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>", None, None, (316, 58, 764, 999)),
    ("<answer>(10, 20), (300, 400)</answer>", None, (10, 20, 300, 400), (10, 20, 300, 400)),
    (
        "<think>a</think><answer>(10, 20), (300, 400)</answer> trailing",
        None,
        (10, 20, 300, 400),
        (10, 20, 300, 400),
    ),
    ("<think>a</think><answer>(10, 20), (300, 400) 7</answer>", None, (10, 20, 300, 400), (10, 20, 300, 400)),
    ("<think>a<think>b</think><answer>(1, 2), (3, 4)</answer>", None, (1, 2, 3, 4), (1, 2, 3, 4)),
    ("<think>猫在左边 🐈</think><answer>（1, 2), (3, 4)</answer>", None, None, None),
    ("<think>猫在左边 🐈</think><answer>(1, 2), (3, 4)</answer>", (1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4)),
    ("", None, None, None),
    ("<think></think><answer></answer>", None, None, None),
    ("<answer>(1, 2), (3)</answer>", None, None, None),
    ("(1, 2, 3, 4)", None, None, None),
]


LOOSE_ONLY = {
    "<think>a</think><answer>[10, 20, 300, 400]</answer>",
    "<think>a</think><answer><|box_start|>(10,20),(300,400)<|box_end|></answer>",
    "<think>a</think><answer>the box (10, 20), (300, 400)</answer>",
}


@pytest.mark.parametrize(("text", "strict", "answer", "first"), CASES)
def test_extract_box_modes(text, strict, answer, first):
    assert extract_box(text, "strict") == strict
    assert extract_box(text, "answer") == answer
    assert extract_box(text, "first") == first
    assert is_strict_format(text) == (strict is not None)
    assert is_loose_format(text) == (strict is not None or text in LOOSE_ONLY)


def test_default_mode_is_answer():
    assert extract_box("<think>(1, 2), (3, 4)</think><answer>(5, 6), (7, 8)</answer>") == (5, 6, 7, 8)


def test_huge_junk_is_fast_and_safe():
    junk = "(" * 50_000 + "1, 2), (" * 5_000 + "<answer>" * 1000 + "x" * 50_000
    assert len(junk) > 100_000
    for mode in ("strict", "answer", "first"):
        extract_box(junk, mode)
    assert not is_strict_format(junk)


@pytest.mark.parametrize("value", [None, 12, b"<answer>(1, 2), (3, 4)</answer>", ["x"]])
def test_non_strings_give_none(value):
    for mode in ("strict", "answer", "first"):
        assert extract_box(value, mode) is None
    assert extract_target_image(value) is None
    assert extract_answer_text(value) is None
    assert image_references(value) == []


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="unknown parse mode"):
        extract_box(GOOD, "loose")


@given(st.text(max_size=300))
def test_never_raises_on_any_text(text):
    for mode in ("strict", "answer", "first"):
        result = extract_box(text, mode)
        assert result is None or len(result) == 4


@given(st.lists(st.integers(-2000, 2000), min_size=4, max_size=4), st.text(alphabet="abc ,.", max_size=30))
def test_written_boxes_parse_back(coords, think):
    x1, y1, x2, y2 = coords
    text = f"<think>{think}</think><answer>({x1}, {y1}), ({x2}, {y2})</answer>"
    assert extract_box(text, "strict") == (x1, y1, x2, y2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("locate this object in the 1th image.", [0]),
        ("It is in the first image.", [0]),
        ("It's in the third image.", [2]),
        ("Find and locate where does the object in image-1 locate in the image-2.", [0, 1]),
        ("the 2nd picture and Image #3", [1, 2]),
        ("see frame two", [1]),
        ("image2 then image 10", [1, 9]),
        ("an imagery of 3 images", []),
        ("Please locate the 1th region picture in the source image.", []),
        ("0th image", []),
    ],
)
def test_image_references(text, expected):
    assert image_references(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>compare image 1 and image 2</think><answer>in the second image (1, 2), (3, 4)</answer>", 1),
        ("<think>image 1 has a cat; it is in image 3</think><answer>(1, 2), (3, 4)</answer>", 2),
        ("<think>nothing</think><answer>(1, 2), (3, 4)</answer>", None),
        ("It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>", 2),
    ],
)
def test_extract_target_image(text, expected):
    assert extract_target_image(text) == expected


@pytest.mark.parametrize(
    ("named", "num_images", "expected"),
    [
        (None, 1, 0),  # a single image needs no name
        (None, 3, None),  # several and none named: unknown
        (1, 3, 1),
        (0, 1, 0),
        (2, 1, None),  # names an image that is not there, even when there is only one
        (3, 3, None),
    ],
)
def test_answer_image(named, num_images, expected):
    assert answer_image(named, num_images) == expected


def test_extract_boxes_lists_every_box_in_order():
    text = "a (1, 2), (3, 4) b [5, 6, 7, 8] <|box_start|>(9,10),(11,12)<|box_end|>"
    assert extract_boxes(text) == [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12)]
    assert extract_boxes(None) == []
