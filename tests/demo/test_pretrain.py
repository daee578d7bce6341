"""The demo's shipped base checkpoint: it loads, answers, and the command that rebuilds it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from univg.cli.main import main
from univg.demo.assets import BASE_DIR, CHECKPOINT_FILES, recipe
from univg.demo.pretrain import CARD, PRETRAIN_LOG

MAX_SHIPPED_BYTES = 5_000_000


def test_shipped_base_is_complete_and_small() -> None:
    names = {p.name for p in BASE_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", CARD, PRETRAIN_LOG} <= names
    assert names <= {*CHECKPOINT_FILES, CARD, PRETRAIN_LOG}
    assert sum(p.stat().st_size for p in BASE_DIR.iterdir()) < MAX_SHIPPED_BYTES
    log = json.loads((BASE_DIR / PRETRAIN_LOG).read_text(encoding="utf-8"))
    assert log["command"] in (BASE_DIR / CARD).read_text(encoding="utf-8")


def test_shipped_base_loads_and_answers_a_box() -> None:
    from univg.data.synthetic import SynthConfig, synthesize
    from univg.inference.predictor import Predictor, Request
    from univg.models.loading import load_model_and_processor

    loaded = load_model_and_processor(BASE_DIR, min_pixels=3136, max_pixels=12544)
    made = synthesize(SynthConfig(n=1, seed=123, tasks=("referring",)), "eval", 0)
    (prediction,) = Predictor(loaded, style="plain").predict(
        [Request(question=made.sample.question, images=made.images)]
    )
    assert prediction.box is not None


def test_demo_recipes_are_packaged() -> None:
    for name in ("pretrain", "sft", "grpo"):
        assert recipe(name).is_file()
    with pytest.raises(FileNotFoundError):
        recipe("nope")


def test_rebuild_command_runs_its_phases_and_a_rerun_skips_what_is_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pretrain"
    argv = ["demo", "pretrain-base", "--out", str(out), "--n-train", "32", "--n-eval", "4"]
    argv += ["--phase", "referring:easy:2", "--phase", "pretrain:mixed:3:named:anneal"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "5 steps" in printed and "held-out Acc@0.5 locate" in printed
    log = json.loads((out / "base" / PRETRAIN_LOG).read_text(encoding="utf-8"))
    assert log["steps"] == 5 and set(log["accuracy"]) == {"referring", "locate", "marked", "average"}
    named = "referring,locate,marked:mixed:3:named:anneal"
    assert [p["phase"] for p in log["phases"]] == ["referring:easy:2", named]
    assert set(log["phases"][0]["accuracy"]) == {"referring", "average"}
    assert set(log["phases"][1]["names_target"]) == {"referring", "locate", "marked"}
    assert all(0 <= v <= 100 for p in log["phases"] for v in p["names_target"].values())
    assert all("init" not in p for p in log["phases"])  # no machine-specific paths in a shipped log
    card = (out / "base" / CARD).read_text(encoding="utf-8")
    assert f"--phase referring:easy:2 --phase {named}" in card
    label = "referring,locate,marked:mixed (answers name the target, lr annealed to 0)"
    assert "| referring:easy | 2 |" in card and f"| {label} | 3 |" in card
    weights = (out / "base" / "model.safetensors").read_bytes()

    # Both phases are done: the same command trains nothing and exports the same weights.
    phase_files = [(out / f"train-{k}" / "model.safetensors").stat().st_mtime_ns for k in (0, 1)]
    assert main(argv) == 0
    assert [(out / f"train-{k}" / "model.safetensors").stat().st_mtime_ns for k in (0, 1)] == phase_files
    assert (out / "base" / "model.safetensors").read_bytes() == weights


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("referring:easy", "expected TASKS:DIFFICULTY:STEPS"),
        ("referring:easy:0", "expected TASKS:DIFFICULTY:STEPS"),
        ("referring:easy:many", "expected TASKS:DIFFICULTY:STEPS"),
        ("referring:tough:10", "difficulty 'tough'"),
        ("pointing:easy:10", "unknown or no tasks"),
        ("referring:easy:10:cool", "expected TASKS:DIFFICULTY:STEPS"),
        ("referring:easy:10:anneal:anneal", "expected TASKS:DIFFICULTY:STEPS"),
        ("referring:easy:10:named:named", "expected TASKS:DIFFICULTY:STEPS"),
    ],
)
def test_a_bad_phase_is_refused_with_its_text(text: str, problem: str) -> None:
    from univg.demo.pretrain import Phase

    with pytest.raises(ValueError, match=problem):
        Phase.parse(text)


def test_phase_text_round_trips() -> None:
    from univg.demo.pretrain import DEFAULT_PHASES, Phase

    extra = (
        Phase(("referring", "locate"), "mixed", 4000, anneal=True),
        Phase(("marked",), "easy", 5, named=True),
    )
    for phase in (*DEFAULT_PHASES, *extra):
        assert Phase.parse(str(phase)) == phase
    assert str(Phase.parse("referring:easy:10:anneal")) == "referring:easy:10:anneal"
    assert str(Phase.parse("referring:easy:10:anneal:named")) == "referring:easy:10:named:anneal"


@pytest.mark.parametrize(
    ("text", "schedule", "warmup"),
    [("referring:easy:10", "constant_with_warmup", 50), ("referring:easy:10:named:anneal", "linear", 0)],
)
def test_an_annealed_phase_decays_the_learning_rate_from_the_start(
    tmp_path: Path, text: str, schedule: str, warmup: int
) -> None:
    from univg.demo.pretrain import Phase, PretrainConfig, phase_config

    phase = Phase.parse(text)
    sft = phase_config(PretrainConfig(out=tmp_path), phase, tmp_path / "init", tmp_path / "train", tmp_path)
    assert (str(sft.lr_scheduler_type).split(".")[-1].lower(), sft.warmup_steps) == (schedule, warmup)
    assert (sft.max_steps, sft.learning_rate) == (10, 1e-3)
    assert sft.answer_names_target == phase.named


# The base the shipped one continues (its card's EARLIER_BASE): the one shipped at this commit.
EARLIER_BASE_COMMIT = "87eba16"


def earlier_base(folder: Path) -> Path:
    """The shipped base's EARLIER_BASE, taken from the repository's history."""
    import subprocess

    folder.mkdir(parents=True)
    for name in (*CHECKPOINT_FILES, CARD):
        blob = subprocess.run(
            ["git", "show", f"{EARLIER_BASE_COMMIT}:src/univg/assets/demo_base/{name}"],
            cwd=BASE_DIR,
            capture_output=True,
            check=True,
        ).stdout
        (folder / name).write_bytes(blob)
    return folder


@pytest.mark.slow
def test_full_rebuild_matches_the_shipped_accuracy(tmp_path: Path) -> None:
    """Rebuilds the shipped base from its EARLIER_BASE with the card's command (about an hour on one thread)."""
    shipped = json.loads((BASE_DIR / PRETRAIN_LOG).read_text(encoding="utf-8"))
    command = shipped["command"].replace("EARLIER_BASE", str(earlier_base(tmp_path / "earlier")))
    argv = [*command.split()[1:], "--out", str(tmp_path / "rebuild")]
    assert main(argv) == 0
    rebuilt = json.loads((tmp_path / "rebuild" / "base" / PRETRAIN_LOG).read_text(encoding="utf-8"))
    assert rebuilt["steps"] == shipped["steps"]
    assert rebuilt["accuracy"]["average"] == pytest.approx(shipped["accuracy"]["average"], abs=2.0)


def test_a_base_can_continue_from_an_earlier_one_and_keeps_its_card(tmp_path: Path) -> None:
    first = tmp_path / "first"
    argv = ["demo", "pretrain-base", "--n-train", "32", "--n-eval", "4", "--phase", "referring:easy:2"]
    assert main([*argv, "--out", str(first)]) == 0
    second = tmp_path / "second"
    assert main([*argv, "--out", str(second), "--init", str(first / "base"), "--phase", "locate:easy:1"]) == 0
    log = json.loads((second / "base" / PRETRAIN_LOG).read_text(encoding="utf-8"))
    assert log["command"].startswith("univg demo pretrain-base --init EARLIER_BASE")
    assert log["continues"] == (first / "base" / CARD).read_text(encoding="utf-8")
    card = (second / "base" / CARD).read_text(encoding="utf-8")
    assert "trained further from an earlier base" in card and "## EARLIER_BASE" in card
    assert (
        log["command"] in card and json.loads((first / "base" / PRETRAIN_LOG).read_text())["command"] in card
    )
