"""The demo's synthetic data: generated once per configuration and reused when it is already there."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

# Processes that draw synthetic samples; the data do not depend on their number.
WORKERS = max(1, min(4, os.cpu_count() or 1))


def synth_data(out: Path, config: Any) -> Path:
    """Generate a synthetic set into `out`, or reuse the one there when it was made with the same config."""
    from univg.data.synthetic import generate_dataset

    manifest = out / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8"))["config"] == json.loads(
        json.dumps(asdict(config))
    ):
        return out
    shutil.rmtree(out, ignore_errors=True)
    generate_dataset(out, config, workers=WORKERS)
    return out
