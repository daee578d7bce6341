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


def test_rebuild_command_runs_a_few_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pretrain"
    argv = [
        "demo",
        "pretrain-base",
        "--out",
        str(out),
        "--max-steps",
        "3",
        "--n-train",
        "32",
        "--n-eval",
        "4",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 steps" in printed and "held-out Acc@0.5 referring" in printed
    log = json.loads((out / "base" / PRETRAIN_LOG).read_text(encoding="utf-8"))
    assert log["steps"] == 3 and set(log["accuracy"]) == {"referring", "locate", "average"}
    assert "--max-steps 3" in (out / "base" / CARD).read_text(encoding="utf-8")


def test_a_curve_along_the_way_goes_into_log_and_card(tmp_path: Path) -> None:
    from univg.demo.pretrain import PretrainConfig, PretrainResult, add_curve, render_card

    base = tmp_path / "base"
    base.mkdir()
    config = PretrainConfig(out=tmp_path)
    result = PretrainResult(base, 10, 1.0, 160.0, {"referring": 1.0, "locate": 0.0, "average": 0.5})
    log = {"config": {"seed": 0}, "steps": 10, "train_seconds": 1.0, "samples_per_s": 160.0}
    log |= {"accuracy": result.accuracy, "losses": [[5, 1.0]], "command": "univg demo pretrain-base"}
    (base / PRETRAIN_LOG).write_text(json.dumps(log), encoding="utf-8")
    (base / CARD).write_text(render_card(config, result), encoding="utf-8")
    add_curve(base, {5: {"referring": 2.0, "locate": 4.0, "average": 3.0}})
    assert json.loads((base / PRETRAIN_LOG).read_text(encoding="utf-8"))["curve"]["5"]["average"] == 3.0
    assert "| 5 | 2.0 | 4.0 | 3.0 |" in (base / CARD).read_text(encoding="utf-8")


@pytest.mark.slow
def test_full_rebuild_matches_the_shipped_accuracy(tmp_path: Path) -> None:
    """Rebuilds the shipped base from scratch (about an hour on one CPU thread)."""
    shipped = json.loads((BASE_DIR / PRETRAIN_LOG).read_text(encoding="utf-8"))
    argv = [*shipped["command"].split()[1:], "--out", str(tmp_path / "rebuild")]
    assert main(argv) == 0
    rebuilt = json.loads((tmp_path / "rebuild" / "base" / PRETRAIN_LOG).read_text(encoding="utf-8"))
    assert rebuilt["steps"] == shipped["steps"]
    assert rebuilt["accuracy"]["average"] == pytest.approx(shipped["accuracy"]["average"], abs=2.0)
