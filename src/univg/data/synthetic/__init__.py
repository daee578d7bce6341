"""The synthetic universal-grounding world: MIG-Bench's ten tasks plus referring, drawn from shapes.

Procedural scenes of coloured, textured shapes pose the same multi-image, implicit-instruction
grounding problems as MIG-Bench, with exact boxes and a rule-based teacher that writes the chain of
thought. It is the embedded data of the demo and the tests, and a controlled testbed.

From Python::

    from univg.data.synthetic import SynthConfig, generate_dataset
    summary = generate_dataset("synth", SynthConfig(n=1000, seed=0))
    # synth/train.jsonl, synth/eval.jsonl (read them with univg.data.schema.read_jsonl)

Names are loaded on first use, so listing tasks (as `univg --help` does) does not import numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SynthConfig": "dataset",
    "SynthSummary": "dataset",
    "Synthesized": "dataset",
    "generate_dataset": "dataset",
    "synthesize": "dataset",
    "DIFFICULTIES": "levels",
    "LEVELS": "levels",
    "Level": "levels",
    "DEFAULT_TASKS": "tasks",
    "MIG_TASKS": "tasks",
    "PRETRAIN_TASKS": "tasks",
    "TASK_GROUPS": "tasks",
    "TASKS": "tasks",
    "make_problem": "tasks",
    "parse_tasks": "tasks",
    "language_corpus": "corpus",
    "WRONG_KINDS": "teacher",
    "WrongChain": "teacher",
    "wrong_chains": "teacher",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
