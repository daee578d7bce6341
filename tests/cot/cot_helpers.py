"""Helpers of the CoT tests: a run's settings, and reading an output file back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from univg.cot.client import RetryPolicy
from univg.cot.runner import GenerateConfig
from univg.cot.teacher import DEFAULT_MODEL

# Backoff in milliseconds: the default suite must stay fast.
FAST_RETRY = RetryPolicy(max_attempts=6, initial_s=0.001, max_s=0.005)


def cot_config(samples: Path, out: Path, url: str, **overrides: Any) -> GenerateConfig:
    settings: dict[str, Any] = {
        "input": str(samples),
        "out": str(out),
        "teacher_url": url,
        "teacher_model": DEFAULT_MODEL,
        "price_in": 0.8,
        "price_out": 2.0,
        "concurrency": 4,
        "retry": FAST_RETRY,
        "timeout_s": 10.0,
        "progress": False,
    }
    settings.update(overrides)
    return GenerateConfig(**settings)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def outcomes(path: Path) -> dict[str, tuple[str, str | None]]:
    """id -> (status, reason); fails if an id is in the file twice."""
    lines = read_lines(path)
    found = {line["id"]: (line["status"], line.get("reason")) for line in lines}
    assert len(found) == len(lines), "an id is in the output more than once"
    return found
