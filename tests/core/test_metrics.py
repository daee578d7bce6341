import pytest

from univg.core.metrics import GroundingMetrics, summarize


def test_summarize_thresholds_are_inclusive():
    result = summarize([0.3, 0.5, 0.7, 0.1])
    assert result == {"n": 4, "acc@0.3": 75.0, "acc@0.5": 50.0, "acc@0.7": 25.0, "miou": pytest.approx(40.0)}
    assert summarize([])["acc@0.5"] == 0.0


def test_macro_and_micro_averages():
    metrics = GroundingMetrics()
    for value in (1.0, 1.0, 1.0, 0.0):
        metrics.add("big", value)
    metrics.add("small", 0.0)
    per_task = metrics.per_task()
    assert per_task["big"]["acc@0.5"] == 75.0
    assert per_task["small"]["acc@0.5"] == 0.0
    assert metrics.average()["acc@0.5"] == pytest.approx(37.5)  # each task counts once
    assert metrics.average()["n"] == 5
    assert metrics.overall()["acc@0.5"] == pytest.approx(60.0)  # each sample counts once
    assert set(metrics.to_dict()) == {"tasks", "average", "overall"}
