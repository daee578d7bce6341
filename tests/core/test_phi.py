import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from univg.core.phi import LOG_FLOOR, PHI_KINDS, bucket, bucket_shares, phi, phi_formula


@pytest.mark.parametrize(
    ("miou", "kind", "expected"),
    [
        (0.0, "exp", math.e),
        (1.0, "exp", 1.0),
        (0.5, "exp", math.exp(0.5)),
        (0.5, "log", -math.log(0.5)),
        (0.0, "log", -math.log(LOG_FLOOR)),
        (1.0, "log", 0.0),
        (0.25, "square", 0.75**2),
        (0.3, "none", 1.0),
        (0.5, "power", 0.5),
        (1.5, "exp", 1.0),  # clamped
        (-1.0, "exp", math.e),  # clamped
        (float("nan"), "exp", math.e),
    ],
)
def test_phi_table(miou, kind, expected):
    assert phi(miou, kind) == pytest.approx(expected)


def test_power_parameters():
    assert phi(0.5, "power", eps=0.1, power=2.0) == pytest.approx(0.6**2)
    with pytest.raises(ValueError, match="unknown difficulty weighting"):
        phi(0.5, "cubic")


@given(st.floats(0, 1), st.floats(0, 1))
def test_harder_groups_never_weigh_less(a, b):
    low, high = sorted((a, b))
    for kind in ("exp", "log", "square", "power"):
        assert phi(low, kind) >= phi(high, kind)
        assert math.isfinite(phi(low, kind))


@pytest.mark.parametrize(
    ("miou", "expected"), [(0.71, "easy"), (0.7, "medium"), (0.3, "medium"), (0.29, "hard"), (0.0, "hard")]
)
def test_buckets(miou, expected):
    assert bucket(miou) == expected


def test_bucket_shares():
    assert bucket_shares([0.9, 0.5, 0.05]) == pytest.approx({"easy": 1 / 3, "medium": 1 / 3, "hard": 1 / 3})
    assert sum(bucket_shares([0.1, 0.9]).values()) == pytest.approx(1.0)
    assert bucket_shares([]) == {"easy": 0.0, "medium": 0.0, "hard": 0.0}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("none", "1 (plain GRPO)"), ("exp", "exp(1 - mIoU)"), ("power", "(1 + 0.1 - mIoU)^2.0")],
)
def test_phi_formula(kind, expected):
    assert phi_formula(kind, eps=0.1, power=2.0) == expected


def test_every_phi_has_a_formula():
    for kind in PHI_KINDS:
        assert phi_formula(kind)
    with pytest.raises(ValueError, match="unknown difficulty weighting"):
        phi_formula("cubic")
