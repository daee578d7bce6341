"""The project's promises to a newcomer: the README's two quickstart commands are what CI runs."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.DOTALL)


def test_quickstart_has_exactly_two_commands_and_ci_runs_them():
    install, tests = quickstart_commands()
    assert "univg demo" in install
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    pip_line = re.search(r"pip install [^&]*", install).group(0).strip()
    assert pip_line in ci, f"CI must install exactly as the README says: {pip_line!r}"
    test_command = tests.split("&&")[-1].strip()
    assert test_command == "pytest" and "\npytest\n" in ci


def test_univg_command_answers_help_and_version():
    for argv in (["--help"], ["--version"], ["data", "--help"], ["train", "--help"], ["cot", "--help"]):
        result = subprocess.run(
            [sys.executable, "-m", "univg", *argv], capture_output=True, text=True, check=True, timeout=60
        )
        assert result.stdout.strip()


def test_where_things_live_names_modules_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Where things live", 1)[1].split("\n#", 1)[0]
    modules = re.findall(r"`(univg(?:\.\w+)*)`", table)
    assert len(modules) > 30
    assert [m for m in modules if importlib.util.find_spec(m) is None] == []
