"""MIG-Bench: the real annotations (all 4,295 records) and a handful of them with generated images."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from univg.data.convert import read_samples, validate_file

# The malformed answers of MIG_data.json (all common_object): inverted, or past the image border.
MALFORMED = {7: "inverted box", 34: "out-of-range box", 105: "inverted box", 126: "inverted box",
             163: "inverted box", 512: "inverted box", 703: "out-of-range box"}  # fmt: skip
TASK_COUNTS = {"region": 1203, "common_object": 816, "object_tracking": 550, "diff": 528,
               "group_grounding": 499, "multi_view": 288, "correspondence": 117, "reasoning": 101,
               "refer_grounding": 99, "view_diff": 94}  # fmt: skip
# Original positions of the records in sample.json, and the target image each must resolve to.
SAMPLE_POSITIONS = [0, 7, 34, 816, 933, 1461, 1960, 2248, 3451, 3545, 3644, 4194, 4287]
SAMPLE_TARGETS = {
    0: 0,  # common_object: "... in the 1th image"
    3: 1,  # correspondence: "in the first image ... in the second image"
    4: 1,  # diff: same geometry, the second image taken, both accepted
    5: 0,  # group_grounding: additional_info "It is in the first image."
    6: 1,  # multi_view: "the first image(<box>) ... in the 2th image"
    7: 0,  # region: the source image
    8: 1,  # view_diff: "in the second image"
    9: 1,  # refer_grounding: "image-1 ... in the image-2"
    10: 1,  # object_tracking: "the first image ... in the 2th image"
    11: 1,  # reasoning: "image-1 ... Image-2 ... the second image"
    12: 1,  # reasoning: "Image-1 ... Image-1 ... the second image"
}


def test_real_annotations_find_exactly_the_malformed_answers(mig_bench_full: Path) -> None:
    report = validate_file("mig-bench", mig_bench_full)
    assert report.records == 4295
    assert report.valid == report.samples == 4295 - len(MALFORMED)
    assert {bad.index: [p.kind for p in bad.problems] for bad in report.bad_records} == {
        index: [kind] for index, kind in MALFORMED.items()
    }
    assert all(p.field == "answer" for bad in report.bad_records for p in bad.problems)
    assert dict(report.problem_counts) == {"inverted box": 5, "out-of-range box": 2}
    assert not report.ok and report.fatal is None


def test_real_annotations_resolve_a_target_for_every_record(mig_bench_full: Path) -> None:
    samples = list(read_samples("mig-bench", mig_bench_full))
    raw = _load(mig_bench_full)
    assert [s.id for s in samples] == [str(i) for i in range(len(raw)) if i not in MALFORMED]
    counts = Counter(s.task for s in samples)
    assert counts == {
        task: n - (len(MALFORMED) if task == "common_object" else 0) for task, n in TASK_COUNTS.items()
    }
    for sample in samples:
        record = raw[int(sample.id)]
        assert 0 <= sample.target_image < len(record["images"])
        assert sample.box == tuple(record["answer"])
        assert sample.images == record["images"]
    assert {s.target_image for s in samples if s.task == "region"} == {0}
    assert all(s.extra["target_images"] == [0, 1] for s in samples if s.task == "diff")


def _load(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def test_sample_records_resolve_their_targets(mig_bench_sample: Path) -> None:
    samples = {int(s.id): s for s in read_samples("mig-bench", mig_bench_sample)}
    assert {position: s.target_image for position, s in samples.items()} == SAMPLE_TARGETS
    group = samples[5]
    assert group.extra["additional_info"].startswith("It is in the first image.")
    assert samples[6].question.startswith("These images share one object in common(the object marked")
    assert samples[0].question.endswith("in the 1th image.")


def test_missing_and_broken_images_are_reported_per_image(
    tmp_path: Path, mig_bench_sample: Path, make_image: Callable[..., Path]
) -> None:
    records = json.loads(mig_bench_sample.read_text())
    for record in records:
        for path in record["images"]:
            make_image(tmp_path / path, (320, 240))
    missing = records[0]["images"][2]
    (tmp_path / missing).unlink()
    broken = records[3]["images"][1]
    (tmp_path / broken).write_bytes(b"\xff\xd8\xff garbage")
    report = validate_file("mig-bench", mig_bench_sample, image_root=tmp_path)
    problems = {(bad.index, p.kind, p.field) for bad in report.bad_records for p in bad.problems}
    assert problems == {
        (0, "missing image", "images[2]"),
        (1, "inverted box", "answer"),
        (2, "out-of-range box", "answer"),
        (3, "unreadable image", "images[1]"),
    }
    assert report.valid == len(records) - 4


def test_sample_paths_join_the_image_root_and_record_the_target_size(
    tmp_path: Path, mig_bench_sample: Path, make_image: Callable[..., Path]
) -> None:
    record = json.loads(mig_bench_sample.read_text())[0]
    for number, path in enumerate(record["images"]):
        make_image(tmp_path / path, (300 + number, 200))
    sample = next(iter(read_samples("mig-bench", mig_bench_sample, image_root=tmp_path)))
    assert sample.images == [str(tmp_path / p) for p in record["images"]]
    assert sample.extra["target_size"] == [300, 200]
    relative = next(
        iter(read_samples("mig-bench", mig_bench_sample, image_root=tmp_path, relative_paths=True))
    )
    assert relative.images == record["images"]


def test_malformed_answers_are_all_common_object(mig_bench_full: Path) -> None:
    records = _load(mig_bench_full)
    assert {records[position]["task"] for position in MALFORMED} == {"common_object"}
