"""`univg eval run --endpoint` against our own server scores exactly as `--model` on the same model."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from PIL import Image
from servers import SMALL, TEST_LIMITS, serving

from univg.cli.main import main
from univg.evaluation.harness import ResumeMismatchError, RunConfig, run_evaluation
from univg.evaluation.predictions import read_predictions
from univg.inference.endpoint import EndpointError, EndpointPredictor
from univg.inference.predictor import GenerationOptions, Request
from univg.serving.config import ServeConfig

NEW_TOKENS = 8


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """Six held-out synthetic samples over one-, two- and multi-image tasks."""
    from univg.data.synthetic import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, SynthConfig(n=0, n_eval=6, seed=3, tasks=("referring", "region", "diff")))
    return out


def _config(synth: Path, out: Path, model: str, **overrides) -> RunConfig:
    settings = {
        "max_new_tokens": NEW_TOKENS,
        "progress": False,
        "examples": 1,
        "batch_size": 4,
        "max_pixels": SMALL,
    }
    settings.update(overrides)
    return RunConfig("synthetic", str(synth / "eval.jsonl"), model, str(out), **settings)


def _responses(out: Path) -> dict[str, str]:
    return {
        key: record["response"] for key, record in read_predictions(out / "predictions.jsonl").records.items()
    }


def test_endpoint_scores_equal_local_scores(server, tiny_varied_model_dir, synth_dir, tmp_path):
    local = run_evaluation(_config(synth_dir, tmp_path / "local", str(tiny_varied_model_dir)))
    remote = run_evaluation(
        _config(synth_dir, tmp_path / "remote", "tiny", endpoint=server.openai_url, concurrency=3)
    )
    assert _responses(tmp_path / "remote") == _responses(tmp_path / "local")
    assert (
        len(set(_responses(tmp_path / "local").values())) > 1
    )  # the answers differ: equality means something
    assert remote.results["tasks"] == local.results["tasks"]
    assert remote.results["average"] == local.results["average"]
    assert remote.generated == local.generated == 6
    run = json.loads((tmp_path / "remote" / "run.json").read_text())
    assert run["model"] == "tiny" and run["endpoint"] == server.openai_url and run["coords"] == "qwen2vl"
    assert json.loads((tmp_path / "local" / "run.json").read_text())["endpoint"] is None
    assert (tmp_path / "remote" / "report.md").read_text().count("tiny") >= 1

    again = run_evaluation(_config(synth_dir, tmp_path / "remote", "tiny", endpoint=server.openai_url))
    assert again.generated == 0 and again.skipped == 6  # resumed: nothing asked twice
    with pytest.raises(ResumeMismatchError, match="endpoint"):
        run_evaluation(_config(synth_dir, tmp_path / "remote", "tiny", endpoint="http://127.0.0.1:9/v1"))


def _cli_args(synth: Path, out: Path) -> list[str]:
    data = ["--benchmark", "synthetic", "--data", str(synth / "eval.jsonl"), "--out", str(out)]
    settings = ["--max-new-tokens", str(NEW_TOKENS), "--max-pixels", str(SMALL), "--no-progress"]
    return ["eval", "run", *data, *settings, "--examples", "0"]


def test_eval_cli_with_an_endpoint(server, synth_dir, tmp_path, capsys):
    args = _cli_args(synth_dir, tmp_path / "run")
    assert (
        main([*args, "--endpoint", server.openai_url, "--endpoint-model", "tiny", "--concurrency", "4"]) == 0
    )
    output = capsys.readouterr()
    assert "average" in output.out and "generated 6 predictions" in output.err
    assert main([*args, "--endpoint", server.openai_url]) == 2
    assert capsys.readouterr().err == (
        "univg eval run: --endpoint needs --endpoint-model NAME (the model name the endpoint serves)\n"
    )
    other = _cli_args(synth_dir, tmp_path / "other")
    assert main([*other, "--endpoint", server.openai_url, "--endpoint-model", "gpt-4o"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("univg eval run: ") and "refused model 'gpt-4o' (HTTP 404" in error
    assert error.count("\n") == 1 and "Traceback" not in error


def test_requests_the_endpoint_refuses_become_errors_of_their_samples(varied_predictor, synth_dir, tmp_path):
    config = ServeConfig(model_name="tiny", limits=dataclasses.replace(TEST_LIMITS, max_images=1))
    with serving(varied_predictor, config) as running:
        outcome = run_evaluation(_config(synth_dir, tmp_path, "tiny", endpoint=running.openai_url))
    records = read_predictions(tmp_path / "predictions.jsonl").records.values()
    errors = [record for record in records if record.get("error")]
    assert errors and len(errors) < 6  # the multi-image samples only
    assert all("this server takes at most 1 per request" in record["error"] for record in errors)
    assert outcome.results["counts"]["errors"] == len(errors)


def test_an_unreachable_endpoint_stops_the_run(tmp_path):
    predictor = EndpointPredictor("http://127.0.0.1:9/v1", "tiny", max_retries=0, timeout_s=5)
    request = Request(question="Find it.", images=[str(Path(__file__).parent / "nothing.png")])
    with pytest.raises(ValueError, match="file not found"):  # a bad sample is that sample's error
        predictor.predict([request])
    image = tmp_path / "a.png"
    Image.new("RGB", (56, 56)).save(image)
    with pytest.raises(EndpointError, match=re.escape("cannot reach http://127.0.0.1:9/v1")):
        predictor.predict(
            [Request(question="Find it.", images=[str(image)])], generation=GenerationOptions(4)
        )


def test_the_endpoint_sees_the_pixels_a_local_model_sees(server, varied_predictor, tmp_path):
    """Images are resized on the client to the run's budget, exactly as the local loader does."""
    path = tmp_path / "big.png"
    Image.effect_noise((300, 200), 60).convert("RGB").save(path)
    request = Request(question="Find it.", images=[str(path)])
    options = GenerationOptions(max_new_tokens=NEW_TOKENS)
    remote = EndpointPredictor(server.openai_url, "tiny", max_pixels=SMALL, max_retries=0).predict_one(
        request, generation=options
    )
    local = varied_predictor.predict_one(request, generation=options)
    assert remote.text == local.text and remote.prompt_tokens == local.prompt_tokens
    assert remote.image_sizes == local.image_sizes == [(300, 200)]
