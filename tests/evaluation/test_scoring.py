"""Scores of a fixture benchmark in every format, by hand, for every parse mode and the image check.

The same six answers go to every benchmark (the ground truth is (100,100),(500,500) in Qwen2-VL's
0..1000; record 3 has invalid ground truth; the answer for record 6 is missing):

    0  strict, exact box                                   IoU 1 in every mode
    1  strict, box shifted by half its width                IoU 1/3 in every mode
    2  <answer> only, exact box                             strict 0, answer 1, first 1
    4  box only inside <think>, IoU 0.6                     strict 0, answer 0, first 0.6
    5  strict, wrong box and the wrong image named in
       <think>, exact box in <answer>                       strict 1, answer 1, first 0; image check 0
    6  no prediction                                        0 everywhere
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from univg.evaluation.harness import score_file
from univg.evaluation.predictions import PredictionsError, read_predictions

FIXTURES = Path(__file__).resolve().parent / "fixtures"

RESPONSES = {
    0: "<think>It is the cup.</think><answer>(100,100),(500,500)</answer>",
    1: "<think>Left of it.</think><answer>(300,100),(700,500)</answer>",
    2: "<answer>(100,100),(500,500)</answer>",
    3: "<think>x</think><answer>(100,100),(500,500)</answer>",
    4: "<think>Maybe (100,100),(500,340).</think> I am not sure.",
    5: "<think>Not (600,600),(900,900); in the {wrong} image.</think><answer>(100,100),(500,500)</answer>",
}

# (acc@0.3, acc@0.5, acc@0.7, miou) of the six scored samples, by hand from the IoUs above.
EXPECTED = {
    "strict": (300 / 6, 200 / 6, 200 / 6, 100 * (1 + 1 / 3 + 1) / 6),  # [1, 1/3, 0, 0, 1, 0]
    "answer": (400 / 6, 300 / 6, 300 / 6, 100 * (1 + 1 / 3 + 1 + 1) / 6),  # [1, 1/3, 1, 0, 1, 0]
    "first": (400 / 6, 300 / 6, 200 / 6, 100 * (1 + 1 / 3 + 1 + 0.6) / 6),  # [1, 1/3, 1, .6, 0, 0]
}
EXPECTED_IMAGE_CHECKED = {
    "strict": (200 / 6, 100 / 6, 100 / 6, 100 * (1 + 1 / 3) / 6),  # [1, 1/3, 0, 0, 0, 0]
    "answer": (300 / 6, 200 / 6, 200 / 6, 100 * (1 + 1 / 3 + 1) / 6),  # [1, 1/3, 1, 0, 0, 0]
    "first": EXPECTED["first"],  # the first box of answer 5 is already wrong
}
METRICS = ("acc@0.3", "acc@0.5", "acc@0.7", "miou")

# benchmark: (file, sample id of record i, task key, the image answer 5 wrongly names)
CASES = {
    "mig-bench": ("MIG_data.json", "{}", "region", "second"),
    "refcoco": ("refcoco_val.json", "{}", "val", "second"),
    "lisa": ("lisa_val.json", "{}", "val", "second"),
    "llmseg": ("LLMSeg_eval.json", "{}", "llmseg", "second"),
    "revos": ("ReVOS_eval.json", "{}", "revos", "first"),  # the third frame is the target
    "reasonvos": ("ReasonVOS_eval.json", "{}", "reasonvos", "first"),
    "synthetic": ("synthetic.jsonl", "s{}", "referring", "second"),
}
# MIG-Bench's diff pairs (records 7, 8): either image is right, so naming either passes the check.
DIFF_RESPONSES = {
    7: "<think>In the first image.</think><answer>(100,100),(500,500)</answer>",
    8: "<think>In the second image.</think><answer>(100,100),(500,500)</answer>",
}


def _records(benchmark: str) -> list[dict]:
    _, id_format, _, wrong = CASES[benchmark]
    responses = dict(RESPONSES)
    if benchmark == "mig-bench":
        responses.update(DIFF_RESPONSES)
    records = [
        {"id": id_format.format(i), "response": text.format(wrong=wrong)} for i, text in responses.items()
    ]
    return [*records, {"id": "999", "response": "<answer>(1,1),(2,2)</answer>"}]


def _assert_metrics(got: dict, expected: tuple[float, ...], n: int) -> None:
    assert got["n"] == n
    for name, value in zip(METRICS, expected, strict=True):
        assert math.isclose(got[name], value, abs_tol=1e-9), (name, got[name], value)


@pytest.mark.parametrize("benchmark", sorted(CASES))
def test_fixture_benchmark_scores_by_hand(benchmark, image_root, tmp_path, write_predictions):
    file, id_format, task, _ = CASES[benchmark]
    predictions = write_predictions(tmp_path / "p.jsonl", _records(benchmark))
    results = score_file(benchmark, FIXTURES / file, predictions, image_root=image_root, write=False).results

    assert results["parse"] == "answer" and results["coords"] == "qwen2vl"
    assert results["invalid_gt"] == [id_format.format(3)]
    assert results["missing"] == [id_format.format(6)]
    assert results["unknown_ids"] == ["999"]
    assert results["unreadable"] == [] and results["errors"] == []
    for mode in ("strict", "answer", "first"):
        _assert_metrics(results["by_parse"][mode]["tasks"][task], EXPECTED[mode], 6)
        _assert_metrics(
            results["by_parse"][mode]["image_checked"]["tasks"][task], EXPECTED_IMAGE_CHECKED[mode], 6
        )
    _assert_metrics(results["tasks"][task], EXPECTED["answer"], 6)
    _assert_metrics(results["image_checked"]["tasks"][task], EXPECTED_IMAGE_CHECKED["answer"], 6)
    if benchmark == "mig-bench":  # the diff pairs score 100 everywhere; the average is over the two tasks
        for mode in ("strict", "answer", "first"):
            _assert_metrics(results["by_parse"][mode]["tasks"]["diff"], (100.0,) * 4, 2)
            _assert_metrics(results["by_parse"][mode]["image_checked"]["tasks"]["diff"], (100.0,) * 4, 2)
        expected_average = tuple((v + 100) / 2 for v in EXPECTED["answer"])
        assert list(results["tasks"]) == ["diff", "region"]  # the paper's column order
    else:
        expected_average = EXPECTED["answer"]
        assert list(results["tasks"]) == [task]
    _assert_metrics(results["average"], expected_average, 8 if benchmark == "mig-bench" else 6)


def test_parse_option_picks_the_primary_mode(image_root, tmp_path, write_predictions):
    predictions = write_predictions(tmp_path / "p.jsonl", _records("lisa"))
    for mode in ("strict", "first"):
        results = score_file(
            "lisa", FIXTURES / "lisa_val.json", predictions, image_root=image_root, parse=mode, write=False
        ).results
        assert results["parse"] == mode
        _assert_metrics(results["tasks"]["val"], EXPECTED[mode], 6)


def test_normalized_and_pixel_coordinates(image_root, tmp_path, write_predictions):
    normalized = write_predictions(
        tmp_path / "n.jsonl", [{"id": "0", "response": "<answer>(0.1, 0.1), (0.5, 0.5)</answer>"}]
    )
    results = score_file(
        "lisa",
        FIXTURES / "lisa_val.json",
        normalized,
        image_root=image_root,
        coords="normalized",
        write=False,
    ).results
    assert results["by_parse"]["answer"]["tasks"]["val"]["miou"] == pytest.approx(100 / 6)

    # Qwen2.5-VL writes pixels of the resized image: 640x480 becomes 644x476 at max_pixels 401,408.
    pixels = write_predictions(
        tmp_path / "px.jsonl", [{"id": "0", "response": "<answer>(64,48),(322,238)</answer>"}]
    )
    results = score_file(
        "lisa", FIXTURES / "lisa_val.json", pixels, image_root=image_root, coords="qwen25vl", write=False
    ).results
    assert results["coords"] == "pixels"
    assert results["tasks"]["val"]["acc@0.7"] == pytest.approx(100 / 6)
    assert results["tasks"]["val"]["miou"] > 100 / 6 * 0.99


def test_pixel_coordinates_need_the_images(tmp_path, write_predictions):
    predictions = write_predictions(tmp_path / "p.jsonl", _records("mig-bench"))
    with pytest.raises(ValueError, match="pass 'image_root' so the images can be measured"):
        score_file("mig-bench", FIXTURES / "MIG_data.json", predictions, coords="qwen25vl", write=False)


def test_mig_bench_scores_without_images(tmp_path, write_predictions):
    """MIG-Bench boxes are 0..1 already: its annotations alone are enough to score."""
    predictions = write_predictions(tmp_path / "p.jsonl", _records("mig-bench"))
    results = score_file("mig-bench", FIXTURES / "MIG_data.json", predictions, write=False).results
    _assert_metrics(results["tasks"]["region"], EXPECTED["answer"], 6)


def test_error_lines_count_as_wrong_and_lose_to_answers(tmp_path, write_predictions, image_root):
    records = [
        {"id": "0", "response": "", "error": "prompt too long"},
        {"id": "1", "response": "", "error": "image unreadable"},
        {"id": "1", "response": RESPONSES[0]},
        {"id": "1", "response": RESPONSES[0]},  # the same answer twice counts once
    ]
    predictions = write_predictions(tmp_path / "p.jsonl", records)
    results = score_file(
        "llmseg", FIXTURES / "LLMSeg_eval.json", predictions, image_root=image_root, write=False
    )
    scores = results.results
    assert scores["errors"] == ["0"]
    assert scores["problems"]["errors"] == {"0": "prompt too long"}
    assert scores["tasks"]["llmseg"]["miou"] == pytest.approx(100 / 6)  # sample 1 is exact, all else 0
    assert scores["missing"] == ["2", "4", "5", "6"]


def test_two_different_answers_for_one_id_are_refused_naming_both_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"id": "1", "response": "a"}\n{"id": "2", "response": "b"}\n{"id": 1, "response": "c"}\n',
        encoding="utf-8",
    )
    with pytest.raises(
        PredictionsError, match=r"id '1' has two different answers, at .*p.jsonl line 1 and .*line 3"
    ):
        read_predictions(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": 3.0, "response": "a"}', "field 'id': must be a string or an integer, got float"),
        ('{"id": true, "response": "a"}', "field 'id': must be a string or an integer, got bool"),
        ('{"id": null, "response": "a"}', "field 'id': must be a string or an integer"),
        ('{"id": "3"}', "field 'response': missing"),
        ('{"id": "3", "response": 5}', "field 'response': must be a string"),
        ("[1, 2]", "expected an object with an 'id'"),
        ('{"id": "3", "response": "a"} {"x": 1}', "line 2"),
    ],
)
def test_prediction_lines_that_would_score_wrongly_are_named(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "0", "response": "a"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(PredictionsError, match="line 2") as caught:
        read_predictions(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_torn_last_line_is_tolerated_but_damage_elsewhere_is_not(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "0", "response": "a"}\n{"id": "1", "resp', encoding="utf-8")
    assert set(read_predictions(path).records) == {"0"}
    path.write_text('{"id": "0", "resp\n{"id": "1", "response": "a"}\n', encoding="utf-8")
    with pytest.raises(PredictionsError, match="line 1"):
        read_predictions(path)
    path.write_text('{"response": "no id"}\n', encoding="utf-8")
    with pytest.raises(PredictionsError, match="'id'"):
        read_predictions(path)


def test_integer_ids_match_string_ids(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": 7, "response": "x"}) + "\n", encoding="utf-8")
    assert read_predictions(path).response("7") == "x"
