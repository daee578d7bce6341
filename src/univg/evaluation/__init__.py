"""Evaluation: the benchmark registry, a batched resumable runner, scoring in every parse mode, reports.

From Python::

    from univg.evaluation import RunConfig, run_evaluation, score_file
    outcome = run_evaluation(RunConfig("mig-bench", "MIG_data.json", "path/to/model", "out/", image_root="imgs"))
    outcome.results["average"]["acc@0.5"]
    score_file("mig-bench", "MIG_data.json", "other_model.jsonl").results["tasks"]

The command line is `univg eval run` / `univg eval score`. Heavy libraries (torch, transformers)
load only when a run starts.
"""

from univg.evaluation.benchmarks import (
    BENCHMARK_NAMES,
    Benchmark,
    BenchmarkData,
    get_benchmark,
    load_benchmark,
)
from univg.evaluation.harness import Outcome, ResumeMismatchError, RunConfig, run_evaluation, score_file
from univg.evaluation.predictions import PredictionsError, read_predictions
from univg.evaluation.scoring import Scores, score_predictions

__all__ = [
    "BENCHMARK_NAMES",
    "Benchmark",
    "BenchmarkData",
    "Outcome",
    "PredictionsError",
    "ResumeMismatchError",
    "RunConfig",
    "Scores",
    "get_benchmark",
    "load_benchmark",
    "read_predictions",
    "run_evaluation",
    "score_file",
    "score_predictions",
]
