"""Writing the world: determinism, the held-out split, the teacher's chains, the files and the CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from univg.cli.main import main
from univg.core.boxes import iou, to_normalized
from univg.core.parsing import extract_box, extract_target_image, image_references
from univg.data.prompts import answer_text
from univg.data.schema import read_jsonl
from univg.data.synthetic import (
    DEFAULT_TASKS,
    MIG_TASKS,
    TASKS,
    WRONG_KINDS,
    SynthConfig,
    generate_dataset,
    parse_tasks,
)
from univg.data.synthetic import dataset as dataset_module
from univg.data.synthetic.teacher import where

MIG_BENCH = Path(__file__).resolve().parents[2] / "fixtures" / "mig_bench" / "MIG_data.json.gz"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every task, 10 training and 5 held-out samples each, with two wrong chains per sample."""
    out = tmp_path_factory.mktemp("world")
    config = SynthConfig(n=10 * len(TASKS), n_eval=5 * len(TASKS), seed=7, tasks=TASKS, wrong_chains=2)
    generate_dataset(out, config)
    return out


def load(root: Path, split: str):
    return list(read_jsonl(root / f"{split}.jsonl"))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    config = SynthConfig(n=2 * len(DEFAULT_TASKS), seed=3, preview=True)
    generate_dataset(tmp_path / "a", config)
    generate_dataset(tmp_path / "b", config)
    first = files(tmp_path / "a")
    assert first == files(tmp_path / "b")
    assert any(name.endswith(".png") for name in first) and "manifest.json" in first
    generate_dataset(tmp_path / "c", SynthConfig(n=2 * len(DEFAULT_TASKS), seed=4))
    assert (tmp_path / "c" / "train.jsonl").read_bytes() != first["train.jsonl"]


def test_samples_are_valid_and_their_images_exist(world):
    for split in ("train", "eval"):
        samples = load(world, split)
        assert len(samples) == (10 if split == "train" else 5) * len(TASKS)
        assert {s.task for s in samples} == set(TASKS)
        for sample in samples:
            assert sample.problem() is None
            assert sample.source == "synthetic"
            for path in sample.images:
                assert not Path(path).is_absolute()
                with Image.open(world / path) as image:
                    assert image.size == (112, 112) and image.mode == "RGB"
            extra = sample.extra
            assert extra["difficulty"] in ("easy", "medium", "hard")
            assert set(extra["target"]) == {"colour", "shape", "texture"}
            assert extra["distractors"] >= (0 if sample.task == "diff" else 1)


def test_univg_data_validate_accepts_every_sample(world):
    from univg.data.convert import validate_file

    for split in ("train", "eval"):
        report = validate_file("canonical", world / f"{split}.jsonl", image_root=world, decode_images=True)
        assert report.invalid == 0 and report.valid == len(load(world, split))


def test_eval_split_shares_no_scene_and_no_image_with_training(world):
    train, held = load(world, "train"), load(world, "eval")
    assert not {s.extra["scene"] for s in train} & {s.extra["scene"] for s in held}

    def digests(samples):
        return {hashlib.sha256((world / p).read_bytes()).hexdigest() for s in samples for p in s.images}

    assert not digests(train) & digests(held)
    assert not {s.question + repr(s.box) for s in train} & {s.question + repr(s.box) for s in held}


def test_an_eval_sample_repeating_a_training_scene_is_redrawn(tmp_path, monkeypatch):
    real = dataset_module.synthesize

    def repeat_training(config, split, index, attempt=0):
        # The first draw of every held-out sample copies training sample `index`.
        if split == "eval" and attempt == 0:
            return real(config, "train", index)
        return real(config, split, index, attempt)

    monkeypatch.setattr(dataset_module, "synthesize", repeat_training)
    generate_dataset(tmp_path, SynthConfig(n=4, n_eval=4, seed=1, tasks=("diff",)))
    train, held = load(tmp_path, "train"), load(tmp_path, "eval")
    assert not {s.extra["scene"] for s in train} & {s.extra["scene"] for s in held}


def test_teacher_chains_are_short_and_lead_to_the_right_box(world):
    for sample in load(world, "train") + load(world, "eval"):
        response = answer_text(sample.box, think=sample.cot)
        parsed = extract_box(response, "strict")
        assert parsed is not None, response
        assert iou(to_normalized(parsed, "qwen2vl"), sample.box) > 0.95
        assert len(sample.cot.split()) <= 30
        target = sample.extra["target"]
        assert target["colour"] in sample.cot and target["shape"] in sample.cot
        assert sample.cot.rstrip(".").endswith(where(sample.box))
        # The last image a chain names is the target image (region and referring name none).
        assert extract_target_image(sample.cot) in (None, sample.target_image)


def test_wrong_chains_are_wrong(world):
    kinds = set()
    for sample in load(world, "train"):
        wrong = sample.extra["wrong_chains"]
        assert len(wrong) == 2
        for chain in wrong:
            kinds.add(chain["kind"])
            assert chain["cot"] != sample.cot
            assert iou(chain["box"], sample.box) < 0.5
            parsed = extract_box(answer_text(chain["box"], think=chain["cot"]), "strict")
            assert iou(to_normalized(parsed, "qwen2vl"), sample.box) < 0.5
    assert kinds == set(WRONG_KINDS)


def _normalise(question: str) -> str:
    question = re.sub(r"<\|box_start\|>.*?<\|box_end\|>", "<BOX>", question)
    question = re.sub(r"<\|object_ref_start\|>.*?<\|object_ref_end\|>", "<REF>", question)
    return " ".join(re.sub(r"\d+th\b", "Nth", question).split())


def test_questions_use_mig_benchs_own_wording(world):
    records = json.loads(gzip.decompress(MIG_BENCH.read_bytes()))
    real = {r["task"]: set() for r in records}
    for record in records:
        real[record["task"]].add(_normalise(record["question"]))
    for sample in load(world, "train"):
        if sample.task in MIG_TASKS and sample.task != "reasoning":
            assert _normalise(sample.question) in real[sample.task], sample.question
        if sample.task == "reasoning":
            assert sample.question.endswith("Find it and locate it in the second image.")
            assert "Image-1" in sample.question and "Image-2" in sample.question


def test_questions_that_name_an_image_name_the_target(world):
    named = ("common_object", "multi_view", "object_tracking", "refer_grounding", "locate")
    for sample in load(world, "train"):
        if sample.task in named:
            assert image_references(sample.question)[-1] == sample.target_image


def test_every_sample_records_the_phrase_its_chain_names_and_marked_names_its_target(world):
    for sample in load(world, "train"):
        assert sample.extra["phrase"].startswith("the ") and sample.extra["phrase"] in sample.cot.lower()
        if sample.task == "marked":
            look = sample.extra["target"]
            words = sample.extra["phrase"].split()
            assert look["colour"] in words and look["shape"] in words
            assert "<|box_start|>" in sample.question and sample.target_image == 0


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "synth"
    args = ["data", "synth", "--out", str(out), "--n", "11", "--n-eval", "11", "--seed", "5", "--preview"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "wrote 22 samples" in printed and "preview:" in printed
    assert len(load(out, "train")) == 11 and len(load(out, "eval")) == 11
    assert sorted(p.stem for p in (out / "preview").glob("*.png")) == sorted(DEFAULT_TASKS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 5 and manifest["counts"]["train"]["diff"] == 1


def test_cli_task_groups_and_bad_input(tmp_path, capsys):
    assert parse_tasks("pretrain") == ("referring", "locate", "marked")
    assert parse_tasks("diff, region,diff") == ("diff", "region")
    args = ["data", "synth", "--out", str(tmp_path), "--n", "3", "--tasks", "locate", "--difficulty", "hard"]
    assert main(args) == 0
    samples = load(tmp_path, "train")
    assert {s.task for s in samples} == {"locate"} and {s.extra["difficulty"] for s in samples} == {"hard"}
    assert main(["data", "synth", "--out", str(tmp_path), "--tasks", "nope"]) == 2
    assert "unknown or no tasks ['nope']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="image size"):
        SynthConfig(image_size=20)


def test_the_world_imports_nothing_outside_core_and_data_and_no_torch():
    code = (
        "import sys, univg.data.synthetic as s, univg.cli.data_synth\n"
        "s.generate_dataset, s.make_problem\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers') or "
        "(m.startswith('univg.') and not m.startswith(('univg.core', 'univg.data', 'univg.cli')))])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_worker_processes_write_the_same_bytes(tmp_path, monkeypatch):
    import univg.data.synthetic.dataset as dataset

    monkeypatch.setattr(dataset, "WORKER_MINIMUM", 1)  # even this small set goes through the pool
    config = SynthConfig(n=24, n_eval=11, seed=5)
    dataset.generate_dataset(tmp_path / "one", config)
    dataset.generate_dataset(tmp_path / "two", config, workers=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) > 50
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
