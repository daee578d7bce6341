"""Fixtures for the trainers: a small synthetic training set, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 training samples over every task (plus a held-out split), images 112 px. Read-only."""
    from univg.data.synthetic import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, SynthConfig(n=24, seed=3))
    return out
