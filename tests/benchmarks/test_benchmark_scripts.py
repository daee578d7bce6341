"""The benchmark scripts run end to end at their smallest settings and write what they promise (slow:
they build models and train; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def run_script(name: str, out: Path, *args: str) -> dict:
    subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--out", str(out), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=BENCHMARKS,
    )
    (result,) = out.glob("*.json")
    assert len(list(out.glob("*.md"))) == 1
    return json.loads(result.read_text())


@pytest.mark.slow
def test_grpo_step_times_all_three_systems_on_the_same_work(tmp_path):
    result = run_script("grpo_step.py", tmp_path, "--scales", "tiny", "--steps", "1", "--new-tokens", "4")
    systems = result["scales"]["tiny"]["systems"]
    assert set(systems) == {"univg", "trl", "official"}
    assert {s["completion_tokens_per_step"] for s in systems.values()} == {8 * 4}  # the same work
    assert result["machine"]["torch_threads"] == 1


@pytest.mark.slow
def test_eval_throughput_checks_every_setting_against_one_at_a_time_through_generate(tmp_path):
    result = run_script(
        "eval_throughput.py",
        tmp_path,
        "--n",
        "6",
        "--batch-sizes",
        "4",
        "--max-new-tokens",
        "4",
        "--rounds",
        "1",
    )
    settings = result["settings"]
    assert len(settings) == 5 and all(s["identical_to_the_first_row"] for s in settings.values())
    assert [s["fast_decode"] for s in settings.values()] == [False, True, True, True, False]


@pytest.mark.slow
def test_memory_counts_less_for_lora_than_for_full_fine_tuning(tmp_path):
    result = run_script("memory.py", tmp_path, "--scale", "tiny", "--stages", "grpo", "--new-tokens", "4")
    options = result["stages"]["grpo"]
    full, lora = options["full, frozen vision (paper)"], options["LoRA r16 without dropout, frozen vision"]
    assert lora["trainable_parameters"] < full["trainable_parameters"]
    assert lora["weights_mib"] == pytest.approx(full["weights_mib"] / 2)  # no reference copy under LoRA
    assert all(o["saved_activations_mib"] > 0 for o in options.values())
