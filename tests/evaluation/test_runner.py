"""`run_evaluation` on the tiny model: batching changes nothing, a killed run resumes to the same results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from univg.evaluation.harness import ResumeMismatchError, RunConfig, run_evaluation
from univg.evaluation.predictions import read_predictions
from univg.inference.predictor import Predictor

NEW_TOKENS = 8


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six held-out synthetic samples over one-, two- and multi-image tasks."""
    from univg.data.synthetic import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, SynthConfig(n=0, n_eval=6, seed=3, tasks=("referring", "region", "diff")))
    return out


def _config(model: Path, synth: Path, out: Path, **overrides) -> RunConfig:
    settings = {"max_new_tokens": NEW_TOKENS, "progress": False, "examples": 1, "batch_size": 4}
    settings.update(overrides)
    return RunConfig("synthetic", str(synth / "eval.jsonl"), str(model), str(out), **settings)


def _responses(out: Path) -> dict[str, str]:
    return {k: r["response"] for k, r in read_predictions(out / "predictions.jsonl").records.items()}


@pytest.fixture(scope="module")
def reference(tiny_varied_model_dir, synth_dir, tmp_path_factory):
    """One uninterrupted batched run: what every other way of running must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    outcome = run_evaluation(_config(tiny_varied_model_dir, synth_dir, out))
    return out, outcome


def test_batched_and_one_at_a_time_give_identical_predictions(
    reference, tiny_varied_model_dir, synth_dir, tmp_path
):
    out, outcome = reference
    single = run_evaluation(_config(tiny_varied_model_dir, synth_dir, tmp_path, batch_size=1))
    assert _responses(tmp_path) == _responses(out)
    assert len(set(_responses(out).values())) > 1  # the answers differ, so equality means something
    assert single.results["tasks"] == outcome.results["tasks"]
    assert outcome.generated == 6 and outcome.skipped == 0


def test_length_sorted_batches_give_the_predictions_of_the_data_order(
    reference, tiny_varied_model_dir, synth_dir, tmp_path
):
    out, _ = reference  # batches of 4 from a window of 8 batches: sorted by prompt length
    run_evaluation(_config(tiny_varied_model_dir, synth_dir, tmp_path, length_sort_window=1))
    assert _responses(tmp_path) == _responses(out)
    sorted_batches = {
        k: r["batch_size"] for k, r in read_predictions(out / "predictions.jsonl").records.items()
    }
    data_order = {
        k: r["batch_size"] for k, r in read_predictions(tmp_path / "predictions.jsonl").records.items()
    }
    assert sorted_batches != data_order  # the batches were made differently, the answers are the same


def test_run_writes_every_file_with_its_settings(reference):
    out, outcome = reference
    assert {p.name for p in out.iterdir()} >= {
        "predictions.jsonl",
        "run.json",
        "results.json",
        "report.md",
        "report.html",
    }
    results = json.loads((out / "results.json").read_text())
    assert results == outcome.results
    run = results["run"]
    assert run["max_pixels"] == 401_408 and run["coords"] == "qwen2vl" and run["style"] == "univg"
    assert run["generation"]["max_new_tokens"] == NEW_TOKENS
    assert len(results["settings"]["data_sha256"]) == 64
    assert "git" in results["provenance"]
    assert results["counts"]["samples"] == 6 and results["missing"] == []
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_killed_run_resumes_to_the_same_results(
    reference, tiny_varied_model_dir, synth_dir, tmp_path, monkeypatch
):
    out, outcome = reference
    real_predict = Predictor.predict
    calls = []

    def dies_on_second_batch(self, requests, **kwargs):
        calls.append(len(requests))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_predict(self, requests, **kwargs)

    monkeypatch.setattr(Predictor, "predict", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):  # a call per batch; the rerun batches by prompt length
        run_evaluation(
            _config(tiny_varied_model_dir, synth_dir, tmp_path, batch_size=2, length_sort_window=1)
        )
    monkeypatch.setattr(Predictor, "predict", real_predict)
    first = _responses(tmp_path)
    assert len(first) == 2
    with (tmp_path / "predictions.jsonl").open("a") as handle:
        handle.write('{"id": "synth-eval-000005", "respon')  # killed in the middle of a write

    resumed = run_evaluation(_config(tiny_varied_model_dir, synth_dir, tmp_path, batch_size=2))
    assert resumed.skipped == 2 and resumed.generated == 4  # nothing done twice
    assert _responses(tmp_path) == _responses(out)
    assert resumed.results["tasks"] == outcome.results["tasks"]
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line) for line in lines)

    again = run_evaluation(_config(tiny_varied_model_dir, synth_dir, tmp_path))
    assert again.generated == 0 and again.skipped == 6


def test_resume_refuses_predictions_made_differently(reference, tiny_varied_model_dir, synth_dir):
    out, _ = reference
    with pytest.raises(ResumeMismatchError, match="max_new_tokens"):
        run_evaluation(_config(tiny_varied_model_dir, synth_dir, out, max_new_tokens=NEW_TOKENS + 1))


def _copy_run(out: Path, target: Path) -> Path:
    shutil.copytree(out, target)
    return target


def test_resume_knows_the_model_by_its_files_not_its_path(
    reference, tiny_model_dir, tiny_varied_model_dir, synth_dir, tmp_path
):
    out, _ = reference
    model = tmp_path / "model"
    shutil.copytree(tiny_varied_model_dir, model)
    run = _copy_run(out, tmp_path / "run")
    moved = run_evaluation(_config(model, synth_dir, run))  # the same model copied elsewhere
    assert moved.generated == 0 and moved.skipped == 6

    shutil.rmtree(model)
    shutil.copytree(tiny_model_dir, model)  # another checkpoint put at the same path
    with pytest.raises(ResumeMismatchError, match=r"model_identity.*not the one that made the predictions"):
        run_evaluation(_config(model, synth_dir, run))
    assert _responses(run) == _responses(out)  # nothing was added or lost


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "run.json").unlink(), "holds predictions but no run.json"),
        (lambda run: (run / "run.json").write_text("{", encoding="utf-8"), "run.json: unreadable"),
        (lambda run: (run / "run.json").write_text("[]", encoding="utf-8"), "not a univg eval run record"),
    ],
)
def test_resume_refuses_predictions_of_an_unknown_model(
    reference, tiny_varied_model_dir, synth_dir, tmp_path, damage, message
):
    run = _copy_run(reference[0], tmp_path / "run")
    damage(run)
    with pytest.raises(ResumeMismatchError if "no run.json" in message else ValueError, match=message):
        run_evaluation(_config(tiny_varied_model_dir, synth_dir, run))
    assert _responses(run) == _responses(reference[0])


def test_a_request_that_cannot_run_is_recorded_and_retried(
    tiny_varied_model_dir, synth_dir, tmp_path, monkeypatch
):
    real_prepare = Predictor._prepare

    def refuses_one(self, request, index, max_new_tokens):
        if request.id == "synth-eval-000001":
            raise ValueError("prompt too long for this test")
        return real_prepare(self, request, index, max_new_tokens)

    monkeypatch.setattr(Predictor, "_prepare", refuses_one)
    outcome = run_evaluation(_config(tiny_varied_model_dir, synth_dir, tmp_path))
    assert outcome.results["errors"] == ["synth-eval-000001"]
    assert outcome.results["problems"]["errors"]["synth-eval-000001"] == "prompt too long for this test"
    assert len(_responses(tmp_path)) == 6  # the others of its batch still ran
    monkeypatch.setattr(Predictor, "_prepare", real_prepare)
    retried = run_evaluation(_config(tiny_varied_model_dir, synth_dir, tmp_path))
    assert retried.generated == 1 and retried.results["errors"] == []


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "univg", *args]


@pytest.mark.slow
def test_two_processes_under_torchrun_match_one(reference, tiny_varied_model_dir, synth_dir, tmp_path):
    out, outcome = reference
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "univg",
        "eval",
        "run",
        "--benchmark",
        "synthetic",
        "--data",
        str(synth_dir / "eval.jsonl"),
        "--model",
        str(tiny_varied_model_dir),
        "--out",
        str(tmp_path),
        "--max-new-tokens",
        str(NEW_TOKENS),
        "--batch-size",
        "2",
        "--no-progress",
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _responses(tmp_path) == _responses(out)
    assert not list(tmp_path.glob("predictions.rank*.jsonl"))  # merged by rank 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["tasks"] == outcome.results["tasks"] and results["run"]["world_size"] == 2


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_matches_one_run(reference, tiny_varied_model_dir, synth_dir, tmp_path):
    out, _ = reference
    args = _cli(
        "eval",
        "run",
        "--benchmark",
        "synthetic",
        "--data",
        str(synth_dir / "eval.jsonl"),
        "--model",
        str(tiny_varied_model_dir),
        "--out",
        str(tmp_path),
        "--max-new-tokens",
        str(NEW_TOKENS),
        "--batch-size",
        "1",
        "--no-progress",
    )
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    predictions = tmp_path / "predictions.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if predictions.is_file() and predictions.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 2 <= len(_responses(tmp_path)) < 6
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _responses(tmp_path) == _responses(out)
