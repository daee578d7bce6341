"""`univg demo --quick` end to end, once: every stage runs and the report holds what the issue asks."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from univg.cli.main import main
from univg.data.synthetic import DEFAULT_TASKS

ROWS = ["base", "CoT-SFT", "+GRPO", "+GRPO-difficulty"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "run"
    printed = io.StringIO()  # capsys is per test; the run is shared by the module
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--quick", "--out", str(out), "--seed", "0"]) == 0
    return out, printed.getvalue()


def test_results_hold_every_stage_and_task(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [s["label"] for s in results["stages"]] == ROWS
    assert results["tasks"] == list(DEFAULT_TASKS)
    for stage in results["stages"]:
        assert set(stage["acc@0.5"]) == set(DEFAULT_TASKS)
        assert 0.0 <= stage["average"] <= 100.0
    assert results["stages"][0]["prompt_style"] == "plain"
    assert {s["prompt_style"] for s in results["stages"][1:]} == {"univg"}


def test_both_grpo_runs_log_rewards_and_difficulty(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for stage in results["stages"][2:]:
        steps = [e for e in stage["log_history"] if "rewards/accuracy_reward/mean" in e]
        assert steps, stage["key"]
        assert all(
            sum(e[f"difficulty/{level}"] for level in ("easy", "medium", "hard")) == pytest.approx(1.0)
            for e in steps
        )
    weights = {
        s["key"]: {e["difficulty/phi_mean"] for e in s["log_history"] if "difficulty/phi_mean" in e}
        for s in results["stages"][2:]
    }
    assert weights["grpo"] == {1.0}


def test_reports_show_the_table_curves_and_gallery(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for row in ROWS:
        assert f"| {row} |" in markdown
    assert "| Model | " + " | ".join(DEFAULT_TASKS) + " | AVG |" in markdown
    for figure in ("grpo_rewards.png", "grpo_difficulty.png"):
        assert (out / "figures" / figure).stat().st_size > 0
    assert len(list((out / "figures").glob("gallery_*.png"))) == len(DEFAULT_TASKS)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2 + len(DEFAULT_TASKS)


def test_cli_prints_the_table_and_the_report_path(quick_run: tuple[Path, str]) -> None:
    out, printed = quick_run
    lines = printed.strip().splitlines()
    assert any(line.startswith("+GRPO-difficulty") for line in lines)
    assert str(out / "report.html") in lines[-1]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_table(quick_run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = quick_run
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--quick", "--out", str(tmp_path / "again"), "--seed", "0"]) == 0
    first = json.loads((out / "results.json").read_text(encoding="utf-8"))
    second = json.loads((tmp_path / "again" / "results.json").read_text(encoding="utf-8"))
    assert [s["acc@0.5"] for s in first["stages"]] == [s["acc@0.5"] for s in second["stages"]]
