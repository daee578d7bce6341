"""`univg eval score` and `univg eval run` against hostile input and disk states: one line on stderr
naming the file, line and field with the flag to use, the exit status of its kind, nothing half written."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from univg.cli.main import main
from univg.evaluation.predictions import PredictionsError, read_predictions

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOOD = "<answer>(100,100),(500,500)</answer>"
REPORTS = {"results.json", "report.md", "report.html"}


def _lines(*records: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


# (name, predictions file bytes, exit status, what stderr must say)
PREDICTIONS: list[tuple[str, bytes, int, str]] = [
    ("float id", _lines({"id": 0, "response": GOOD}, {"id": 1.0, "response": GOOD}), 1, "line 2: field 'id'"),
    ("no response", _lines({"id": 0, "response": GOOD}, {"id": 1}), 1, "line 2: field 'response': missing"),
    (
        "response not text",
        _lines({"id": 0, "response": ["a"]}),
        1,
        "line 1: field 'response': must be a string",
    ),
    (
        "two answers for one id",
        _lines({"id": 0, "response": GOOD}, {"id": "0", "response": "(1,1),(2,2)"}),
        1,
        "id '0' has two different answers",
    ),
    (
        "not UTF-8",
        _lines({"id": 0, "response": GOOD}, b"\xff{}", {"id": 1, "response": GOOD}),
        1,
        "line 2: not UTF-8",
    ),
    ("not JSON", _lines(b"{'id': 0}", {"id": 1, "response": GOOD}), 1, "line 1: invalid JSON"),
    ("too deep", _lines(b"[" * 5000 + b"]" * 5000, {"id": 1, "response": GOOD}), 1, "nested deeper than 256"),
    (
        "another benchmark's ids",
        _lines({"id": "refcoco-7", "response": GOOD}),
        1,
        "none of the 1 predicted ids",
    ),
]


def _score_args(predictions: Path, image_root: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "score",
        "--benchmark",
        "llmseg",
        "--data",
        str(FIXTURES / "LLMSeg_eval.json"),
        "--image-root",
        str(image_root),
        "--predictions",
        str(predictions),
        *extra,
    ]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and "internal error" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    ("name", "content", "status", "message"), PREDICTIONS, ids=[p[0] for p in PREDICTIONS]
)
def test_bad_predictions_are_named_and_nothing_is_written(
    tmp_path, capsys, image_root, name, content, status, message
):
    predictions = tmp_path / "p.jsonl"
    predictions.write_bytes(content)
    assert main(_score_args(predictions, image_root)) == status
    line = _one_line(capsys)
    assert line.startswith(f"univg eval score: {predictions}") or str(predictions) in line
    assert message in line
    assert {p.name for p in tmp_path.iterdir()} == {"p.jsonl"}  # no report of a file that was not read


def test_unknown_ids_and_repeated_lines_are_reported_on_the_console(tmp_path, capsys, image_root):
    predictions = tmp_path / "p.jsonl"
    predictions.write_bytes(
        _lines({"id": 0, "response": GOOD}, {"id": 0, "response": GOOD}, {"id": 99, "response": GOOD})
    )
    assert main(_score_args(predictions, image_root)) == 0
    out = capsys.readouterr().out
    assert "predictions for ids not in the data (ignored): 1 ('99')" in out
    assert "repeated lines (an error retried, or the same answer twice): 1" in out


def _symlink(target: Path) -> Path:
    target.parent.joinpath("elsewhere").mkdir()
    target.symlink_to(target.parent / "elsewhere")
    return target


def _file(target: Path) -> Path:
    target.write_text("not a folder")
    return target


def _under_a_file(target: Path) -> Path:
    target.write_text("a file")
    return target / "reports"


# (name, how --out is made hostile, what stderr must say)
OUTS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("a symbolic link", _symlink, "is a symbolic link; univg does not write through or replace links"),
    ("a file", _file, "is a file; expected a folder path"),
    ("below a file", _under_a_file, "is a file, not a folder"),
    ("a device", lambda _: Path(os.devnull), "is a device"),
]


@pytest.mark.parametrize(("name", "make", "message"), OUTS, ids=[o[0] for o in OUTS])
def test_an_output_that_cannot_be_right_is_refused_before_any_work(
    tmp_path, capsys, image_root, write_predictions, name, make, message
):
    predictions = write_predictions(tmp_path / "p.jsonl", [{"id": 0, "response": GOOD}])
    out = make(tmp_path / "out")
    assert main(_score_args(predictions, image_root, "--out", str(out))) == 2
    assert message in _one_line(capsys)
    if name == "a symbolic link":
        assert not any((tmp_path / "elsewhere").iterdir())


def test_a_full_disk_leaves_no_partial_report(tmp_path, capsys, image_root, write_predictions, full_disk):
    predictions = write_predictions(tmp_path / "p.jsonl", [{"id": 0, "response": GOOD}])
    before = {p.name for p in full_disk.iterdir()}
    assert main(_score_args(predictions, image_root, "--out", str(full_disk))) == 1
    line = _one_line(capsys)
    assert "results.json: not written: the disk is full: free some space or write elsewhere" in line
    assert {p.name for p in full_disk.iterdir()} == before  # no results.json, no temporary file


def test_eval_run_checks_its_output_and_options_first(tmp_path, capsys):
    data = tmp_path / "eval.jsonl"
    data.write_text("{}\n")
    args = ["eval", "run", "--benchmark", "synthetic", "--data", str(data), "--model", str(tmp_path)]
    assert main([*args, "--out", str(_file(tmp_path / "out"))]) == 2
    assert "out: is a file; expected a folder path" in _one_line(capsys)
    with pytest.raises(SystemExit) as caught:
        main([*args, "--out", str(tmp_path / "new"), "--batch-size", "0"])
    assert caught.value.code == 2
    assert "--batch-size: must be at least 1, got 0" in _one_line(capsys)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.binary(max_size=40)
        | st.dictionaries(
            st.sampled_from(["id", "response", "error", "x"]),
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats()
            | st.text(max_size=6)
            | st.lists(st.integers()),
        ).map(lambda record: json.dumps(record).encode()),
        max_size=6,
    )
)
def test_no_exception_but_a_named_one_escapes_the_predictions_reader(tmp_path, lines):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        found = read_predictions(path)
    except PredictionsError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(record.get("response", ""), str) for record in found.records.values())


def test_a_run_stopped_by_a_full_disk_resumes_once_there_is_space(
    tiny_model_dir, tmp_path, capsys, full_disk, monkeypatch
):
    from univg.data.synthetic import SynthConfig, generate_dataset

    generate_dataset(tmp_path / "synth", SynthConfig(n=0, n_eval=2, seed=1, tasks=("referring",)))
    out = full_disk / "run"
    args = ["eval", "run", "--benchmark", "synthetic", "--data", str(tmp_path / "synth" / "eval.jsonl")]
    args += ["--model", str(tiny_model_dir), "--out", str(out), "--max-new-tokens", "4", "--no-progress"]
    assert main(args) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the weights' loading bar
    assert (
        last.startswith("univg eval run: ") and "the disk is full: free some space or write elsewhere" in last
    )
    assert all(p.stat().st_size == 0 for p in out.rglob("*") if p.is_file())  # nothing half written

    (full_disk / "filler").unlink(missing_ok=True)  # space again (a tmpfs), or no more injected errors
    monkeypatch.undo()
    assert main(args) == 0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


def test_an_adapter_is_known_with_its_base(tiny_model_dir, tmp_path):
    from univg.evaluation.harness import model_identity

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"adapter weights")
    before = model_identity(str(adapter))
    assert before["base"] == model_identity(str(base)) and "sha256" in before

    (base / "chat_template.jinja").write_text("{{ messages }}")  # the base changed under the adapter
    after = model_identity(str(adapter))
    assert after["sha256"] == before["sha256"] and after != before
