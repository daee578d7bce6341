import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from univg.core.difficulty import LOG_FLOOR, bucket, bucket_shares, group_means, weight


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
def test_weight_table(miou, kind, expected):
    assert weight(miou, kind) == pytest.approx(expected)


def test_power_parameters():
    assert weight(0.5, "power", eps=0.1, power=2.0) == pytest.approx(0.6**2)
    with pytest.raises(ValueError, match="unknown difficulty weighting"):
        weight(0.5, "cubic")


@given(st.floats(0, 1), st.floats(0, 1))
def test_harder_groups_never_weigh_less(a, b):
    low, high = sorted((a, b))
    for kind in ("exp", "log", "square", "power"):
        assert weight(low, kind) >= weight(high, kind)
        assert math.isfinite(weight(low, kind))


@pytest.mark.parametrize(
    ("miou", "expected"), [(0.71, "easy"), (0.7, "medium"), (0.3, "medium"), (0.29, "hard"), (0.0, "hard")]
)
def test_buckets(miou, expected):
    assert bucket(miou) == expected


def test_group_means_and_shares():
    rewards = [1.0, 0.8, 0.9, 0.9, 0.5, 0.5, 0.4, 0.6, 0.0, 0.1, 0.0, 0.1]
    means = group_means(rewards, 4)
    assert means == pytest.approx([0.9, 0.5, 0.05])
    shares = bucket_shares(means)
    assert shares == pytest.approx({"easy": 1 / 3, "medium": 1 / 3, "hard": 1 / 3})
    assert sum(bucket_shares([0.1, 0.9]).values()) == pytest.approx(1.0)
    assert bucket_shares([]) == {"easy": 0.0, "medium": 0.0, "hard": 0.0}
    with pytest.raises(ValueError, match="groups of 5"):
        group_means(rewards, 5)
