"""`univg eval run` / `univg eval score` end to end on the synthetic split with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from univg.cli.main import build_parser, main
from univg.cli.options import options_for
from univg.evaluation import RunConfig, score_file

FIXTURES = Path(__file__).resolve().parent / "fixtures"
METRICS = {"n", "acc@0.3", "acc@0.5", "acc@0.7", "miou"}


def _check_schema(scores: dict) -> None:
    """The --json contract of the issue: tasks, a macro average, invalid_gt and missing lists."""
    assert {"tasks", "average", "invalid_gt", "missing"} <= set(scores)
    assert scores["tasks"] and all(set(m) == METRICS for m in scores["tasks"].values())
    assert set(scores["average"]) == METRICS
    for metrics in [*scores["tasks"].values(), scores["average"]]:
        assert all(0.0 <= metrics[k] <= 100.0 for k in METRICS - {"n"})
    assert all(isinstance(i, str) for i in scores["invalid_gt"] + scores["missing"])
    tasks = scores["tasks"].values()
    expected_average = sum(m["acc@0.5"] for m in tasks) / len(tasks)
    assert scores["average"]["acc@0.5"] == pytest.approx(expected_average)  # macro over tasks
    assert set(scores["by_parse"]) == {"strict", "answer", "first"}
    assert set(scores["image_checked"]) == {"tasks", "average"}


@pytest.fixture(scope="module")
def cli_run(tiny_model_dir, tmp_path_factory):
    """`univg data synth` then `univg eval run`, as a user would type them."""
    synth = tmp_path_factory.mktemp("synth")
    out = tmp_path_factory.mktemp("run")
    assert (
        main(["data", "synth", "--out", str(synth), "--n", "0", "--n-eval", "4", "--tasks", "referring,diff"])
        == 0
    )
    args = ["eval", "run", "--benchmark", "synthetic", "--data", str(synth / "eval.jsonl"), "--model"]
    args += [str(tiny_model_dir), "--out", str(out), "--max-new-tokens", "8", "--no-progress"]
    assert main(args) == 0
    return synth, out


def test_run_prints_a_summary_and_writes_reports(cli_run, capsys):
    _, out = cli_run
    results = json.loads((out / "results.json").read_text())
    _check_schema(results)
    assert set(results["tasks"]) == {"referring", "diff"}
    markdown = (out / "report.md").read_text()
    assert "## Acc@0.5 (%), in the paper's layout" in markdown and "| referring |" in markdown
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_score_json_matches_the_run(cli_run, capsys, tmp_path):
    synth, out = cli_run
    capsys.readouterr()
    args = ["eval", "score", "--benchmark", "synthetic", "--data", str(synth / "eval.jsonl")]
    assert (
        main([*args, "--predictions", str(out / "predictions.jsonl"), "--out", str(tmp_path), "--json"]) == 0
    )
    scores = json.loads(capsys.readouterr().out)
    _check_schema(scores)
    run_results = json.loads((out / "results.json").read_text())
    assert scores["tasks"] == run_results["tasks"] and scores["by_parse"] == run_results["by_parse"]
    assert scores["run"]["model"] == run_results["run"]["model"]  # run.json travels with the predictions
    assert {p.name for p in tmp_path.iterdir()} == {"results.json", "report.md", "report.html"}


def test_score_a_foreign_predictions_file(tmp_path, capsys, image_root):
    predictions = tmp_path / "theirs.jsonl"
    predictions.write_text(
        json.dumps({"id": 0, "response": "<|box_start|>(100,100),(500,500)<|box_end|>"}) + "\n"
    )
    args = ["eval", "score", "--benchmark", "mig-bench", "--data", str(FIXTURES / "MIG_data.json")]
    args += ["--predictions", str(predictions), "--parse", "first", "--label", "Qwen2-VL-7B (ours)", "--json"]
    args += ["--image-root", str(image_root)]
    assert main(args) == 0
    scores = json.loads(capsys.readouterr().out)
    _check_schema(scores)
    assert scores["tasks"]["region"]["acc@0.5"] == pytest.approx(100 / 6)
    assert scores["invalid_gt"] == ["3"] and scores["missing"] == ["1", "2", "4", "5", "6", "7", "8"]
    markdown = (tmp_path / "report.md").read_text()
    assert "| UniVG-R1 (paper) | 71.97 | 58.51 | 93.13 |" in markdown
    assert "| ours − UniVG-R1 | -71.97 |" in markdown  # no diff prediction: Static is 0 for us
    assert "our average covers 2 of the table's 10 columns" in markdown
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # worst answers drawn, images embedded


def test_cli_errors_are_one_line_messages(tmp_path, capsys):
    args = ["eval", "score", "--benchmark", "lisa", "--data", str(FIXTURES / "lisa_val.json")]
    assert main([*args, "--predictions", str(tmp_path / "none.jsonl")]) == 2  # a wrong path: usage
    assert "none.jsonl: not found; check --predictions" in capsys.readouterr().err
    (tmp_path / "p.jsonl").write_text("")
    assert main([*args, "--predictions", str(tmp_path / "p.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "pass --image-root" in err and len(err.strip().splitlines()) == 1


# These steer the command, or (--endpoint-model) reach the library under another name: `model`.
CLI_ONLY = {"command", "eval_command", "func", "command_parser", "verbose", "json", "endpoint_model"}


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["eval", "run", "--model", "m", "--out", "o"], RunConfig),
        (["eval", "score", "--predictions", "p.jsonl"], score_file),
    ],
)
def test_every_option_reaches_the_library_under_its_own_name(argv, target):
    args = build_parser().parse_args([*argv, "--benchmark", "synthetic", "--data", "d.jsonl"])
    passed = options_for(target, args)
    assert set(vars(args)) - CLI_ONLY == set(passed)


def test_run_defaults_are_the_run_configs():
    required = ["eval", "run", "--benchmark", "synthetic", "--data", "d", "--model", "m", "--out", "o"]
    args = build_parser().parse_args(required)
    assert RunConfig(**options_for(RunConfig, args)) == RunConfig("synthetic", "d", "m", "o")
    config = RunConfig(**options_for(RunConfig, build_parser().parse_args([*required, "--no-progress"])))
    assert config.progress is False


def test_the_cli_offers_the_dtypes_model_loading_knows():
    from univg.cli.options import DTYPES
    from univg.models.loading import DTYPES as LOADING_DTYPES

    assert DTYPES == LOADING_DTYPES
