"""convert -> load -> prompt -> answer text -> parse -> the same box, in every coordinate system."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from univg.core.boxes import CoordSystem, box_to_pixels, to_normalized
from univg.core.parsing import extract_box, is_loose_format
from univg.core.resize import resized_size
from univg.data.convert import convert_file
from univg.data.images import load_image
from univg.data.prompts import (
    COT_SUFFIX,
    SIMPLE_REFERENCE_PREFIX,
    answer_text,
    sample_messages,
)
from univg.data.schema import GroundingSample, SampleError, read_jsonl

SIZES = [(640, 480), (1280, 720), (333, 999), (90, 60)]


@pytest.fixture
def converted(
    tmp_path: Path, mig_bench_sample: Path, make_image: Callable[..., Path]
) -> list[GroundingSample]:
    """The MIG-Bench sample converted with generated images of assorted sizes."""
    for number, record in enumerate(json.loads(mig_bench_sample.read_text())):
        for position, path in enumerate(record["images"]):
            make_image(tmp_path / "images" / path, SIZES[(number + position) % len(SIZES)])
    out = tmp_path / "mig.jsonl"
    convert_file("mig-bench", mig_bench_sample, out, image_root=tmp_path / "images")
    return list(read_jsonl(out))


@pytest.mark.parametrize("coords", ["qwen2vl", "pixels"])
def test_round_trip_through_the_prompt(converted: list[GroundingSample], coords: str) -> None:
    assert len(converted) == 11
    for sample in converted:
        messages = sample_messages(sample, coords=coords, with_answer=True)
        user, assistant = messages
        assert [part["type"] for part in user["content"]] == ["image"] * len(sample.images) + ["text"]
        assert user["content"][-1]["text"] == sample.question + COT_SUFFIX
        answer = assistant["content"][0]["text"]
        written = extract_box(answer, "strict")
        assert written is not None, answer
        loaded = load_image(sample.target_path)
        size = loaded.resized_size if coords == "pixels" else None
        assert resized_size(tuple(sample.extra["target_size"])) == loaded.resized_size
        back = to_normalized(written, coords, size)
        tolerance = 0.5 / min(size) if size else 0.5 / 1000
        assert back == pytest.approx(sample.box, abs=tolerance + 1e-12)
        x1, _, x2, _ = box_to_pixels(back, loaded.original_size)
        assert 0 <= x1 < x2 <= loaded.original_size[0]


def test_pixel_answers_need_the_target_size(converted: list[GroundingSample], tmp_path: Path) -> None:
    """Recorded at conversion, else read from the image header, else given: never guessed."""
    sample = converted[0]
    recorded = sample_messages(sample, coords="pixels", with_answer=True)
    sample.extra.pop("target_size")
    assert sample_messages(sample, coords="pixels", with_answer=True) == recorded
    sample.images = [str(tmp_path / "gone.png")] * len(sample.images)
    with pytest.raises(ValueError, match=r"need the target image size \(.*gone\.png: file not found\)"):
        sample_messages(sample, coords="pixels", with_answer=True)
    given_size = sample_messages(sample, coords="pixels", size=(560, 420), with_answer=True)
    assert "(180, 40), (559, 304)" in given_size[1]["content"][0]["text"]


def test_simple_reference_items_get_the_prefix_and_no_reasoning() -> None:
    sample = GroundingSample(
        "1", "refcoco", "refcoco", ["a.jpg"], "the man on the left", 0, (0.1, 0.2, 0.3, 0.4)
    )
    user, assistant = sample_messages(sample, with_answer=True)
    assert user["content"][-1]["text"] == SIMPLE_REFERENCE_PREFIX + "the man on the left"
    assert assistant["content"][0]["text"] == "<answer>(100, 200), (300, 400)</answer>"


def test_chain_of_thought_goes_into_the_answer() -> None:
    sample = GroundingSample(
        "1", "cot-sft", "univg-sft", ["a.jpg", "b.jpg"], "q", 1, (0.1, 0.2, 0.3, 0.4), cot="why"
    )
    text = sample_messages(sample, with_answer=True)[1]["content"][0]["text"]
    assert text == "<think>why</think><answer>(100, 200), (300, 400)</answer>"


@pytest.mark.parametrize(
    ("style", "box_tags", "expected"),
    [
        ("plain", None, "<|box_start|>(100, 200), (300, 400)<|box_end|>"),
        ("plain", False, "(100, 200), (300, 400)"),
        ("univg", None, "<think>why</think><answer>(100, 200), (300, 400)</answer>"),
        ("univg", False, "<think>why</think><answer>(100, 200), (300, 400)</answer>"),
        ("univg", True, "<think>why</think><answer><|box_start|>(100, 200), (300, 400)<|box_end|></answer>"),
    ],
)
def test_answers_in_each_style_and_form(style: str, box_tags: bool | None, expected: str) -> None:
    """`box_tags` wraps the UniVG answer's box in Qwen's tags: readable in every mode but strict, whose
    paper format has no tags (the `format_loose` reward accepts them)."""
    sample = GroundingSample(
        "1", "locate", "synthetic", ["a.png", "b.png"], "q", 1, (0.1, 0.2, 0.3, 0.4), cot="why"
    )
    answer = sample_messages(sample, style=style, with_answer=True, box_tags=box_tags)[1]["content"][0][
        "text"
    ]
    assert answer == expected
    assert extract_box(answer, "first") == (100, 200, 300, 400)
    assert extract_box(answer, "strict") == (None if style == "plain" or box_tags else (100, 200, 300, 400))
    assert is_loose_format(answer) == (style == "univg")


def test_named_plain_answers_and_chainless_simple_references() -> None:
    """Qwen2-VL's grounded form names the target before its box; a simple reference can drop its chain."""
    box = (0.1, 0.2, 0.3, 0.4)
    named = GroundingSample(
        "1", "locate", "synthetic", ["a.png"], "q", 0, box, cot="why", extra={"phrase": "the red circle"}
    )
    answer = sample_messages(named, style="plain", with_answer=True, box_tags=False, name_target=True)
    text = answer[1]["content"][0]["text"]
    assert text == "<|object_ref_start|>the red circle<|object_ref_end|>(100, 200), (300, 400)"
    assert extract_box(text, "first") == (100, 200, 300, 400)
    unnamed = GroundingSample("2", "locate", "synthetic", ["a.png"], "q", 0, box)
    with pytest.raises(SampleError, match=r"sample 2: extra\.phrase is missing") as refused:
        sample_messages(unnamed, style="plain", with_answer=True, name_target=True)
    assert refused.value.option == "answer_names_target" and refused.value.field_name == "extra.phrase"
    referring = GroundingSample("3", "referring", "synthetic", ["a.png"], "the red circle", 0, box, cot="why")
    for chains, expected in ((True, "<think>why</think><answer>"), (False, "<answer>")):
        reply = sample_messages(referring, with_answer=True, simple_reference_chains=chains)[1]
        assert reply["content"][0]["text"] == expected + "(100, 200), (300, 400)</answer>"
    two_images = GroundingSample("4", "locate", "synthetic", ["a.png", "b.png"], "q", 1, box, cot="why")
    reply = sample_messages(two_images, with_answer=True, simple_reference_chains=False)[1]
    assert reply["content"][0]["text"].startswith("<think>why</think>")  # not a simple reference: kept


boxes = st.tuples(st.floats(0, 0.49), st.floats(0, 0.49), st.floats(0.51, 1), st.floats(0.51, 1)).map(
    lambda b: (b[0], b[1], b[2], b[3])
)


@settings(deadline=None)  # pure arithmetic: a time limit only measures how busy the machine is
@given(box=boxes, width=st.integers(28, 4000), height=st.integers(28, 4000))
def test_any_box_survives_the_trip_within_rounding(box: tuple, width: int, height: int) -> None:
    if max(width, height) / min(width, height) > 200:
        return
    resized = resized_size((width, height))
    for coords, size, tolerance in (
        (CoordSystem.QWEN2VL, None, 0.5 / 1000),
        (CoordSystem.PIXELS, resized, 0.5 / min(resized)),
    ):
        for style, box_tags in (("univg", False), ("univg", True), ("plain", None), ("plain", False)):
            text = answer_text(box, coords=coords, size=size, think="t", style=style, box_tags=box_tags)
            written = extract_box(text, "first" if style == "plain" else "answer" if box_tags else "strict")
            assert to_normalized(written, coords, size) == pytest.approx(box, abs=tolerance + 1e-12)
