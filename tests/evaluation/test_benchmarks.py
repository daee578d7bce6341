"""The benchmark registry: splits, task keys, selections, and the real MIG-Bench annotations."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from univg.evaluation.benchmarks import BENCHMARK_NAMES, get_benchmark, load_benchmark
from univg.evaluation.paper import MIG_BENCH_TABLE, PAPER_MODELS, PAPER_TABLES, REFCOCO_TABLE, table_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MIG_BENCH_FULL = Path(__file__).resolve().parents[1] / "fixtures" / "mig_bench" / "MIG_data.json.gz"
# The records of MIG_data.json whose answers are malformed (DESIGN.md, section 3).
MIG_BENCH_INVALID = ["7", "34", "105", "126", "163", "512", "703"]
MIG_BENCH_COUNTS = {
    "region": 1203,
    "common_object": 816 - 7,
    "object_tracking": 550,
    "diff": 528,
    "group_grounding": 499,
    "multi_view": 288,
    "correspondence": 117,
    "reasoning": 101,
    "refer_grounding": 99,
    "view_diff": 94,
}


def test_registry_has_every_benchmark_of_the_paper():
    assert set(BENCHMARK_NAMES) == {
        "mig-bench",
        "refcoco",
        "refcoco+",
        "refcocog",
        "lisa",
        "llmseg",
        "revos",
        "reasonvos",
        "synthetic",
    }
    assert get_benchmark("revos").score_frame == 2 and get_benchmark("reasonvos").score_frame == 2
    with pytest.raises(ValueError, match="mig-bench"):
        get_benchmark("nope")


def test_real_mig_bench_excludes_exactly_the_seven_malformed_answers():
    data = load_benchmark("mig-bench", MIG_BENCH_FULL)
    assert sorted(data.invalid_gt, key=int) == MIG_BENCH_INVALID
    assert all(
        "common_object" not in reason for reason in data.invalid_gt.values()
    )  # reasons are box problems
    assert Counter(data.task_of.values()) == MIG_BENCH_COUNTS
    assert data.tasks() == [c.task for c in MIG_BENCH_TABLE.columns]  # reported in the paper's column order
    diff = next(s for s in data.samples if s.task == "diff")
    assert diff.extra["target_images"] == [0, 1]


def test_tasks_and_limit_select_samples():
    data = load_benchmark("mig-bench", MIG_BENCH_FULL, tasks=["diff", "region"], limit=3)
    assert Counter(data.task_of.values()) == {"diff": 3, "region": 3}
    with pytest.raises(ValueError, match="no samples of task"):
        load_benchmark("mig-bench", MIG_BENCH_FULL, tasks=["nonsense"])


@pytest.mark.parametrize(
    ("benchmark", "file_name", "split"),
    [
        ("refcoco", "refcoco_val.json", "val"),
        ("refcoco", "refcoco_testA.json", "testA"),
        ("refcoco+", "refcocop_testb.json", "testB"),
        ("refcocog", "refcocog_test.json", "test"),
        ("lisa", "lisa_test.json", "test"),
    ],
)
def test_split_comes_from_the_file_name(benchmark, file_name, split, tmp_path, image_root):
    source = FIXTURES / ("lisa_val.json" if benchmark == "lisa" else "refcoco_val.json")
    data_file = shutil.copy(source, tmp_path / file_name)
    data = load_benchmark(benchmark, data_file, image_root=image_root)
    assert data.split == split
    assert set(data.task_of.values()) == {split}


def test_split_errors_say_what_to_do(tmp_path, image_root):
    unnamed = shutil.copy(FIXTURES / "refcoco_val.json", tmp_path / "refcoco.json")
    with pytest.raises(ValueError, match="'split'"):
        load_benchmark("refcoco", unnamed, image_root=image_root)
    assert load_benchmark("refcoco", unnamed, image_root=image_root, split="testa").split == "testA"
    with pytest.raises(ValueError, match=r"holds refcoco \(by its file name\), not refcocog"):
        load_benchmark("refcocog", FIXTURES / "refcoco_val.json", image_root=image_root, split="val")
    with pytest.raises(ValueError, match="no splits"):
        load_benchmark("llmseg", FIXTURES / "LLMSeg_eval.json", image_root=image_root, split="val")


def test_pixel_benchmarks_need_the_image_root():
    with pytest.raises(ValueError, match="'image_root'"):
        load_benchmark("lisa", FIXTURES / "lisa_val.json")


def test_missing_images_are_listed_apart_from_invalid_ground_truth(tmp_path, image_root):
    partial = tmp_path / "root"
    shutil.copytree(image_root, partial)
    (partial / "img" / "a.jpg").unlink()
    data = load_benchmark("mig-bench", FIXTURES / "MIG_data.json", image_root=partial)
    assert sorted(data.unreadable, key=int) == ["0", "1", "2", "4", "5", "6", "7", "8"]
    assert list(data.invalid_gt) == ["3"]  # its box is wrong as well as its image missing
    assert data.samples == []


def test_paper_averages_match_their_rows():
    """A check on the transcription: each AVG is the mean of its row, to the paper's rounding."""
    for table in PAPER_TABLES:
        for model in PAPER_MODELS:
            row = table.values[model]
            assert sum(row) / len(row) == pytest.approx(table.average[model], abs=0.03), (table.source, model)
    assert MIG_BENCH_TABLE.value("UniVG-R1", "mig-bench", "view_diff") == 58.51
    assert REFCOCO_TABLE.value("Migician", "refcocog", "test") == 87.80
    assert table_for("lisa").source == "Table 2" and table_for("synthetic") is None
