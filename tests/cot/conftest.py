"""Fixtures of the CoT tests: a small synthetic world with wrong chains, the offline teacher on loopback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cot_helpers import cot_config, outcomes
from cot_servers import ServerThread

from univg.cot.runner import generate
from univg.cot.teacher import OfflineTeacher, create_app


@pytest.fixture(scope="session")
def cot_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """22 training samples (2 per task) with 2 wrong chains each, no eval split. Read-only."""
    from univg.data.synthetic import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("cot-synth")
    generate_dataset(out, SynthConfig(n=22, n_eval=0, seed=5, wrong_chains=2))
    return out


@pytest.fixture(scope="session")
def samples_file(cot_synth: Path) -> Path:
    return cot_synth / "train.jsonl"


@pytest.fixture(scope="session")
def offline_teacher(samples_file: Path) -> OfflineTeacher:
    return OfflineTeacher(samples_file)


@pytest.fixture(scope="session")
def teacher_url(offline_teacher: OfflineTeacher) -> Any:
    """The offline teacher behind uvicorn on loopback, for the whole session."""
    with ServerThread(create_app(offline_teacher)) as server:
        yield server.url


@dataclass
class CleanRun:
    out: Path
    outcomes: dict[str, tuple[str, str | None]]
    cost: float
    replies: int


@pytest.fixture(scope="session")
def clean_run(samples_file: Path, teacher_url: str, tmp_path_factory: pytest.TempPathFactory) -> CleanRun:
    """An uninterrupted run with the default settings (3 chains and a judge): the reference."""
    out = tmp_path_factory.mktemp("clean") / "cot.jsonl"
    summary = generate(cot_config(samples_file, out, teacher_url))
    assert summary.complete
    return CleanRun(out, outcomes(out), summary.cost, summary.run.requests)
