import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from univg.evaluation.intervals import Interval, macro_mean_interval, paired_difference_interval

hits = st.lists(st.sampled_from([0.0, 100.0]), min_size=1, max_size=60)


@settings(deadline=None, max_examples=40)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), hits, min_size=1))
def test_the_interval_holds_the_macro_average(values):
    interval = macro_mean_interval(values, resamples=500)
    expected = np.mean([np.mean(v) for v in values.values()])
    assert interval.estimate == pytest.approx(expected)
    assert interval.low <= interval.estimate + 1e-9 and interval.estimate <= interval.high + 1e-9
    assert 0.0 <= interval.low and interval.high <= 100.0


def test_a_model_against_itself_differs_by_exactly_zero():
    values = {"a": [0, 100, 100, 0], "b": [100, 100, 0, 0, 0]}
    assert paired_difference_interval(values, values, resamples=200) == Interval(0.0, 0.0, 0.0)


def test_pairing_makes_a_consistent_small_gain_significant():
    rng = np.random.default_rng(0)
    before = {t: list(rng.choice([0.0, 100.0], size=100)) for t in "abc"}
    after = {t: [100.0 if i % 20 == 0 else v for i, v in enumerate(before[t])] for t in "abc"}  # +5% flips
    difference = paired_difference_interval(before, after)
    separate = macro_mean_interval(after).low - macro_mean_interval(before).high
    assert difference.excludes_zero and difference.low > 0  # paired: the gain is clear
    assert separate < 0  # two separate intervals overlap: unpaired would call it noise
    assert difference.estimate == pytest.approx(
        np.mean([np.mean(after[t]) - np.mean(before[t]) for t in "abc"])
    )


def test_the_same_seed_gives_the_same_interval_and_bad_input_is_refused():
    values = {"a": [0, 100, 100], "b": [100, 0]}
    assert macro_mean_interval(values, seed=3) == macro_mean_interval(values, seed=3)
    with pytest.raises(ValueError, match="same tasks"):
        paired_difference_interval({"a": [1, 2]}, {"a": [1]})
    with pytest.raises(ValueError, match="at least one sample"):
        macro_mean_interval({"a": []})
    assert str(Interval(1.234, -0.5, 2.0)) == "1.2 [-0.5, 2.0]"
