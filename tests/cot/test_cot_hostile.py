"""`univg cot generate/review/prompts` refuse outputs that cannot be right before any request or read."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from univg.cli.main import main


def _link(tmp_path: Path) -> str:
    (tmp_path / "kept.jsonl").write_text("keep me\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "kept.jsonl")
    return str(tmp_path / "link.jsonl")


def _file(tmp_path: Path) -> str:
    (tmp_path / "file").write_text("x")
    return str(tmp_path / "file")


NO_TEACHER = ["--teacher-url", "http://127.0.0.1:9/v1", "--teacher-model", "m", "--no-progress"]
# (name, command given the tmp folder and an input file, what the one line says)
CASES: list[tuple[str, Callable[[Path, str], list[str]], str]] = [
    ("generate onto a device", lambda t, i: ["generate", "--input", i, "--out", os.devnull, *NO_TEACHER], "is a device"),
    ("generate through a link", lambda t, i: ["generate", "--input", i, "--out", _link(t), *NO_TEACHER], "symbolic link"),
    ("generate below a file", lambda t, i: ["generate", "--input", i, "--out", _file(t) + "/o.jsonl", *NO_TEACHER], "not a folder"),
    ("review onto a device", lambda t, i: ["review", "--input", i, "--sample", "1", "--out", os.devnull, "--force"], "is a device"),
    ("review through a link", lambda t, i: ["review", "--input", i, "--sample", "1", "--out", _link(t), "--force"], "symbolic link"),
    ("review over a file", lambda t, i: ["review", "--input", i, "--sample", "1", "--out", _file(t)], "exists; pass --force"),
    ("generate from a missing input", lambda t, i: ["generate", "--input", str(t / "no.jsonl"), "--out", str(t / "o.jsonl"), *NO_TEACHER], "no.jsonl: not found; check --input"),
    ("prompts into a file", lambda t, i: ["prompts", "--out", _file(t)], "is a file; expected a folder path"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "arguments", "message"), CASES, ids=[c[0] for c in CASES])
def test_an_output_that_cannot_be_right_is_refused_first(
    samples_file, tmp_path, capsys, name, arguments, message
):
    assert main(["cot", *arguments(tmp_path, str(samples_file))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("univg cot ") and message in err[0], err
    if "link" in name:
        assert (tmp_path / "kept.jsonl").read_text() == "keep me\n"
