"""What the benchmarks share: the model scales, the machine description, timing, and writing results.

Every benchmark measures ratios within one run (settings alternate, so machine load hits all alike),
reports wall and CPU seconds (the dev machine is shared and loaded: CPU seconds show the work done,
wall seconds what a user waits), and writes JSON plus a Markdown table naming the machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from univg.models.tiny import TinySpec

T = TypeVar("T")
RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Scale:
    """A random Qwen2-VL size, its image side in pixels, and the synthetic task that gives two images."""

    spec: TinySpec
    image_size: int
    task: str = "diff"  # two images per prompt


SCALES = {
    # the test suite's tiny model: about 0.8M parameters, 16 image tokens per 112 px image
    "tiny": Scale(TinySpec(initializer_range=0.1), 112),
    # tens of millions of parameters, 64 image tokens per 224 px image: compute dominates, not Python
    "mid": Scale(
        TinySpec(
            hidden_size=512,
            intermediate_size=1536,
            num_layers=6,
            num_heads=8,
            num_kv_heads=4,
            mrope_section=(8, 12, 12),
            vision_depth=6,
            vision_width=384,
            vision_heads=6,
            initializer_range=0.1,
        ),
        224,
    ),
}


def machine() -> dict[str, Any]:
    """The machine and software a result came from."""
    import torch
    import transformers
    import trl

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "commit": commit,
        "date": date.today().isoformat(),
    }


def machine_line(info: dict[str, Any]) -> str:
    device = info["gpu"] or f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch thread(s)"
    return (
        f"{device}; load average {info['load_average'][0]} at the start; torch {info['torch']}, "
        f"transformers {info['transformers']}, TRL {info['trl']}; commit {info['commit']}"
    )


@dataclass
class Timed:
    """Wall and CPU seconds of one call."""

    wall_s: float
    cpu_s: float


def timed(function: Callable[[], T]) -> tuple[T, Timed]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, Timed(time.perf_counter() - wall, time.process_time() - cpu)


def medians(runs: list[Timed]) -> Timed:
    return Timed(statistics.median(r.wall_s for r in runs), statistics.median(r.cpu_s for r in runs))


def write_results(
    name: str, result: dict[str, Any], markdown: str, out_dir: Path | None = None
) -> list[Path]:
    """`DATE-name.json` and `DATE-name.md` in benchmarks/results/ (or `out_dir`)."""
    folder = out_dir or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{result['machine']['date']}-{name}"
    paths = [folder / f"{stem}.json", folder / f"{stem}.md"]
    for path, text in zip(paths, (json.dumps(result, indent=2) + "\n", markdown), strict=True):
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return paths
