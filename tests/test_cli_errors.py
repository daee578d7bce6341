"""The command line's one error style: a flag value out of range is a one-line usage error (exit 2)
in every command, and whatever else goes wrong is one line with the exit status of its kind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import univg.models.tiny
from univg.cli.main import main
from univg.core.errors import UsageError

NO_TEACHER = [
    "--input",
    "in.jsonl",
    "--out",
    "o.jsonl",
    "--teacher-url",
    "http://127.0.0.1:9/v1",
    "--teacher-model",
    "m",
]
# (argv, the flag the one line must name)
OUT_OF_RANGE: list[tuple[list[str], str]] = [
    (["predict", "--model", "m", "--image", "a.png", "--question", "q", "--max-pixels", "0"], "--max-pixels"),
    (["predict", "--model", "m", "--image", "a.png", "--question", "q", "--temperature", "-1"], "--temperature"),
    (["predict", "--model", "m", "--image", "a.png", "--question", "q", "--top-p", "5"], "--top-p"),
    (["predict", "--model", "m", "--image", "a.png", "--question", "q", "--temperature", "nan"], "--temperature"),
    (["serve", "--model", "m", "--port", "99999"], "--port"),
    (["serve", "--model", "m", "--max-wait-ms", "-1"], "--max-wait-ms"),
    (["eval", "run", "--benchmark", "synthetic", "--data", "d", "--model", "m", "--out", "o", "--limit", "0"], "--limit"),
    (["eval", "score", "--benchmark", "synthetic", "--data", "d", "--predictions", "p", "--examples", "-1"], "--examples"),
    (["cot", "generate", *NO_TEACHER, "--timeout", "nan"], "--timeout"),
    (["cot", "generate", *NO_TEACHER, "--chains", "0"], "--chains"),
    (["cot", "generate", *NO_TEACHER, "--iou-threshold", "2"], "--iou-threshold"),
    (["cot", "teacher", "--samples", "s.jsonl", "--port", "-5"], "--port"),
    (["train", "sft", "--learning_rate", "abc"], "--learning_rate"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "flag"), OUT_OF_RANGE, ids=[" ".join(a[:2]) + " " + f for a, f in OUT_OF_RANGE]
)
def test_a_flag_value_out_of_range_is_a_one_line_usage_error(tmp_path, monkeypatch, capsys, argv, flag):
    monkeypatch.chdir(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own check of the value
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("univg ") and flag in err[0], err


# (what the library raises, the exit status, what the one line says)
FAILURES: list[tuple[BaseException, int, str]] = [
    (UsageError("{option} is wrong", option="seed"), 2, "univg model tiny: --seed is wrong"),
    (OSError(errno.ENOSPC, "No space left on device", "/x/y"), 1, "/x/y: the disk is full"),
    (KeyboardInterrupt(), 130, "univg model tiny: interrupted"),
    (
        RuntimeError("boom"),
        1,
        "internal error (RuntimeError: boom); this is a bug in univg: rerun with --verbose",
    ),
]


@pytest.mark.parametrize(
    ("raised", "status", "message"), FAILURES, ids=[type(f[0]).__name__ for f in FAILURES]
)
def test_whatever_goes_wrong_is_one_line_with_its_exit_status(
    tmp_path, monkeypatch, capsys, raised, status, message
):
    def fails(*_args: object, **_kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(univg.models.tiny, "build_tiny_model", fails)
    assert main(["model", "tiny", "--out", str(tmp_path / "m")]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


# Every command that writes a folder, with what it needs besides --out (nothing it reads is reached).
FOLDER_WRITERS: list[list[str]] = [
    ["data", "synth", "--n", "1"],
    ["model", "tiny"],
    ["demo"],
    ["demo", "pretrain-base"],
    ["eval", "run", "--benchmark", "synthetic", "--data", "d.jsonl", "--model", "m"],
    ["cot", "prompts"],
]


@pytest.mark.parametrize("command", FOLDER_WRITERS, ids=[" ".join(c[:2]) for c in FOLDER_WRITERS])
@pytest.mark.parametrize(
    ("in_the_way", "message"),
    [
        ("file", "is a file; expected a folder path"),
        ("link", "is a symbolic link"),
        ("device", "is a device"),
    ],
)
def test_an_output_folder_that_cannot_be_right_is_refused_before_any_work(
    tmp_path, monkeypatch, capsys, command, in_the_way, message
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    if in_the_way == "file":
        out.write_text("mine")
    elif in_the_way == "link":
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
    else:
        out = Path(os.devnull)
    assert main([*command, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert in_the_way != "file" or out.read_text() == "mine"
    assert in_the_way != "link" or not any((tmp_path / "real").iterdir())
