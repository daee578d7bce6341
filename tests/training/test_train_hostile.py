"""`univg train sft|grpo` with wrong recipes, overrides, outputs and data: one line, the option to fix,
exit status 2 for usage and 1 for bad data, before any model loads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from univg.cli.main import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _file(tmp_path: Path, name: str, content: str) -> str:
    (tmp_path / name).write_text(content, encoding="utf-8")
    return str(tmp_path / name)


def _link(tmp_path: Path) -> str:
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real")
    return str(tmp_path / "out")


# (name, arguments after `--config RECIPE` given a tmp folder (a first "--config" replaces the recipe),
#  exit status, what the one line says)
CASES: list[tuple[str, Callable[[Path], list[str]], int, str]] = [
    ("a missing recipe", lambda t: ["--config", str(t / "no.yaml")], 2, "no.yaml: not found; check --config"),
    (
        "a recipe that is not YAML",
        lambda t: ["--config", _file(t, "r.yaml", "a: [1,\n")],
        2,
        "not a YAML recipe",
    ),
    ("an unknown field", lambda t: ["--no_such_field", "3"], 2, "unknown option(s) ['--no_such_field', '3']"),
    ("a value of the wrong type", lambda t: ["--learning_rate", "abc"], 2, "invalid float value: 'abc'"),
    (
        "an output that is a file",
        lambda t: ["--output_dir", _file(t, "o", "x")],
        2,
        "is a file; expected a folder",
    ),
    ("an output through a link", lambda t: ["--output_dir", _link(t)], 2, "is a symbolic link"),
    (
        "resume with nothing to resume",
        lambda t: ["--output_dir", str(t / "new"), "--resume"],
        2,
        "drop --resume",
    ),
]


@pytest.mark.parametrize("stage", ["sft", "grpo"])
@pytest.mark.parametrize(("name", "arguments", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_recipe_or_option_is_one_line(tmp_path, capsys, stage, name, arguments, status, message):
    extra = arguments(tmp_path)
    recipe = [] if extra[0] == "--config" else ["--config", str(RECIPES / stage / "demo.yaml")]
    model = ["--model_name_or_path", str(tmp_path / "no-model")]
    assert main(["train", stage, *recipe, *model, *extra]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"univg train {stage}: "), err
    assert message in err[0]


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_both_stages_read_and_check_their_data_before_the_model(tmp_path, capsys, stage):
    args = [
        "train",
        stage,
        "--config",
        str(RECIPES / stage / "demo.yaml"),
        "--output_dir",
        str(tmp_path / "o"),
    ]
    args += ["--model_name_or_path", str(tmp_path / "no-model")]  # never reached
    assert main([*args, "--train_files", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl: not found; check --train_files" in capsys.readouterr().err
    bad = _file(tmp_path, "bad.jsonl", json.dumps({"id": "a", "task": "t"}) + "\n")
    assert main([*args, "--train_files", bad]) == 1
    assert capsys.readouterr().err == f"univg train {stage}: {bad}: line 1: field 'source': missing field\n"
