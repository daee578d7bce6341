import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from univg.core.boxes import (
    Box,
    CoordSystem,
    box_problem,
    coordinate_limit,
    from_normalized,
    iou,
    to_normalized,
)

MIN_SIDE = 1e-6  # below this, areas underflow towards subnormals: a box that small is degenerate


@st.composite
def valid_boxes(draw):
    x1 = draw(st.floats(0.0, 1.0 - MIN_SIDE))
    y1 = draw(st.floats(0.0, 1.0 - MIN_SIDE))
    x2 = draw(st.floats(x1 + MIN_SIDE, 1.0))
    y2 = draw(st.floats(y1 + MIN_SIDE, 1.0))
    return (x1, y1, x2, y2)


any_number = st.floats(allow_nan=True, allow_infinity=True)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        ((0, 0, 10, 10), (10, 10, 20, 20), 0.0),  # touching corners
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),  # disjoint
        ((0, 0, 10, 10), (2, 2, 4, 4), 4 / 100),  # contained
        ((0, 0, 0, 10), (0, 0, 10, 10), 0.0),  # degenerate
        ((10, 10, 0, 0), (0, 0, 10, 10), 0.0),  # inverted
        ((0, 0, float("nan"), 10), (0, 0, 10, 10), 0.0),
        ((0, 0, float("inf"), 10), (0, 0, 10, 10), 0.0),
        ((0, 0, 1e308, 1e308), (0, 0, 1e308, 1e308), 0.0),  # area overflows to inf
        ((0, 0, 10), (0, 0, 10, 10), 0.0),  # malformed
        (("a", 0, 1, 1), (0, 0, 1, 1), 0.0),
    ],
)
def test_iou_table(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)


@given(valid_boxes(), valid_boxes())
def test_iou_is_symmetric_and_bounded(a, b):
    value = iou(a, b)
    assert 0.0 <= value <= 1.0
    assert value == iou(b, a)


@given(valid_boxes())
def test_iou_with_itself_is_one(box):
    assert iou(box, box) == pytest.approx(1.0)


@given(
    st.tuples(any_number, any_number, any_number, any_number),
    st.tuples(any_number, any_number, any_number, any_number),
)
def test_iou_never_raises_or_nans(a, b):
    value = iou(a, b)
    assert 0.0 <= value <= 1.0 and not math.isnan(value)


@given(valid_boxes(), st.integers(28, 4000), st.integers(28, 4000))
def test_roundtrip_through_every_system_keeps_the_box(box, width, height):
    for system in CoordSystem:
        size = (width, height) if system is CoordSystem.PIXELS else None
        back = to_normalized(from_normalized(box, system, size), system, size)
        sx, sy = coordinate_limit(system, size)
        # integer systems round to the nearest unit: half a unit of error at most
        tolerance_x = 0.0 if system is CoordSystem.NORMALIZED else 0.5 / sx + 1e-12
        tolerance_y = 0.0 if system is CoordSystem.NORMALIZED else 0.5 / sy + 1e-12
        for got, want, tol in zip(back, box, (tolerance_x, tolerance_y) * 2, strict=True):
            assert abs(got - want) <= tol


@given(valid_boxes(), valid_boxes(), st.integers(28, 4000), st.integers(28, 4000))
def test_iou_invariant_under_exact_scaling(a, b, width, height):
    for system in (CoordSystem.QWEN2VL, CoordSystem.PIXELS):
        size = (width, height)
        sx, sy = coordinate_limit(system, size)
        scaled_a = (a[0] * sx, a[1] * sy, a[2] * sx, a[3] * sy)
        scaled_b = (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)
        assert iou(scaled_a, scaled_b) == pytest.approx(iou(a, b), abs=1e-9)


@pytest.mark.parametrize(
    ("box", "limit", "reason"),
    [
        ((0.1, 0.1, 0.5, 0.5), 1.0, None),
        ((0.5, 0.1, 0.1, 0.5), 1.0, "inverted"),
        ((0.1, 0.1, 0.1, 0.5), 1.0, "degenerate"),
        ((0.1, 0.1, 1.2, 0.5), 1.0, "out of range"),
        ((-0.1, 0.1, 0.5, 0.5), 1.0, "out of range"),
        ((10, 10, 999, 1000), 1000, None),
        ((0.1, float("nan"), 0.5, 0.5), 1.0, "not finite"),
        (("x", 0, 1, 1), 1.0, "not numeric"),
        ((0.1, 0.2, 0.3), 1.0, "wrong length: expected 4 numbers, got 3"),
    ],
)
def test_box_problem_reasons(box, limit, reason):
    assert box_problem(box, limit) == reason


def test_box_type():
    box = Box.of([0.1, 0.2, 0.5, 0.6])
    assert box.is_valid
    assert box.width == pytest.approx(0.4) and box.height == pytest.approx(0.4)
    assert box.area == pytest.approx(0.16)
    assert box.center == pytest.approx((0.3, 0.4))
    assert box.to("qwen2vl") == (100, 200, 500, 600)
    assert box.to(CoordSystem.PIXELS, (200, 100)) == (20, 20, 100, 60)
    assert Box(-0.2, 0.5, 1.5, 0.9).clip().as_tuple() == (0.0, 0.5, 1.0, 0.9)
    assert Box(0.5, 0.5, 0.1, 0.9).problem() == "inverted"
    with pytest.raises(ValueError, match="4 numbers"):
        Box.of([1, 2, 3])


def test_coordinate_system_names_and_errors():
    assert CoordSystem.parse("qwen25vl") is CoordSystem.PIXELS
    assert CoordSystem.parse(" Qwen2VL ") is CoordSystem.QWEN2VL
    with pytest.raises(ValueError, match="unknown coordinate system 'bogus'"):
        CoordSystem.parse("bogus")
    with pytest.raises(ValueError, match="need the"):
        to_normalized((1, 2, 3, 4), "pixels")
    with pytest.raises(ValueError, match="positive"):
        from_normalized((0.1, 0.1, 0.2, 0.2), "pixels", (0, 10))
