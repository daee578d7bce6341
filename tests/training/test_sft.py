"""Stage 1 (CoT-SFT) on the tiny model: loss, resume, assistant-only mask, length drops, parts, recipes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from univg.core.resize import resized_size
from univg.data.images import probe_image
from univg.data.prompts import answer_text, is_simple_reference
from univg.data.schema import GroundingSample, read_jsonl, write_jsonl
from univg.models.loading import load_model_and_processor
from univg.training.config import parse_config
from univg.training.data import (
    conversation_messages,
    group_turns,
    load_training_conversations,
    load_training_samples,
)
from univg.training.model_config import model_part
from univg.training.runner import run_trainer
from univg.training.sft import (
    DROPPED_FILE,
    DroppedReport,
    UniVGSFTConfig,
    build_sft_trainer,
    conversation_length,
    train_sft,
)

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on these shared 2-core machines a second thread makes steps ~4x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sft_config(
    model_dir: Path, train_files: list[Path], output_dir: Path, **overrides: Any
) -> UniVGSFTConfig:
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "model_name_or_path": str(model_dir),
        "train_files": [str(path) for path in train_files],
        "freeze_vision_tower": False,
        "freeze_merger": False,
        "learning_rate": 2e-3,
        "lr_scheduler_type": "constant_with_warmup",
        "warmup_steps": 2,
        "per_device_train_batch_size": 4,
        "max_length": 1024,
        "bf16": False,
        "activation_checkpointing": False,
        "save_strategy": "no",
        "logging_steps": 2,
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
    }
    settings.update(overrides)
    return UniVGSFTConfig(**settings)


@pytest.fixture(scope="module")
def dialogue_file(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two converted two-turn dialogues (ids "{record}-{turn}", extra.turn) over multi-image samples."""
    samples = list(read_jsonl(synth_dir / "train.jsonl"))
    multi = [s for s in samples if len(s.images) > 1][:2]
    turns = []
    for record, sample in enumerate(multi):
        images = [str(synth_dir / path) for path in sample.images]
        first = replace(sample, id=f"dlg{record}-0", images=images, extra={"turn": 0})
        second = replace(
            sample,
            id=f"dlg{record}-1",
            images=images,
            question="Now find the same object once more.",
            cot="It is the one I found before.",
            extra={"turn": 1},
        )
        turns += [second, first]  # out of order on purpose: grouping sorts by turn
    path = tmp_path_factory.mktemp("dialogues") / "dialogues.jsonl"
    write_jsonl(turns, path)
    return path


# --- data: mixing and multi-turn grouping --------------------------------------------------------


def test_turns_of_one_dialogue_become_one_conversation(dialogue_file, synth_dir):
    config = sft_config(Path("unused"), [dialogue_file, synth_dir / "train.jsonl"], Path("unused"))
    conversations = load_training_conversations(config)
    dialogues = [c for c in conversations if c[0].id.startswith("dlg")]
    assert len(dialogues) == 2 and len(conversations) == 2 + 24
    for turns in dialogues:
        assert [t.extra["turn"] for t in turns] == [0, 1]
    singles = load_training_conversations(config, multi_turn=False)
    assert len(singles) == 4 + 24


def test_lone_samples_and_look_alike_ids_stay_single():
    base = GroundingSample("x-0", "t", "s", ["a.png"], "q", 0, (0.1, 0.1, 0.5, 0.5))
    other_images = replace(base, id="x-1", images=["b.png"], extra={"turn": 1})
    wrong_number = replace(base, id="x-7", extra={"turn": 1})
    assert len(group_turns([base, other_images, wrong_number])) == 3
    with pytest.raises(ValueError, match="turn numbers repeat"):
        group_turns([replace(base, extra={"turn": 0}), replace(base, extra={"turn": 0})])


def test_mixing_ratios_count_conversations(dialogue_file, synth_dir):
    config = sft_config(
        Path("unused"), [synth_dir / "train.jsonl", dialogue_file], Path("unused"), train_ratios=[0.5, 2.0]
    )
    conversations = load_training_conversations(config)
    assert sum(c[0].id.startswith("dlg") for c in conversations) == 4  # 2 dialogues, twice
    assert sum(c[0].id.startswith("synth") for c in conversations) == 12  # half of 24


def test_sft_leaves_out_lines_the_cot_pipeline_rejected(synth_dir, tmp_path, caplog):
    samples = list(read_jsonl(synth_dir / "train.jsonl"))[:4]
    path = tmp_path / "cot.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for number, sample in enumerate(samples):
            status = "rejected" if number % 2 else "verified"
            record = {
                "status": status,
                **sample.to_json(),
                "images": [str(synth_dir / p) for p in sample.images],
            }
            handle.write(json.dumps(record) + "\n")
    config = sft_config(Path("unused"), [path], Path("unused"))
    with caplog.at_level(logging.INFO, logger="univg.training.data"):
        conversations = load_training_conversations(config)
    assert sorted(c[0].id for c in conversations) == sorted([samples[0].id, samples[2].id])
    assert "left out 2 lines rejected by univg cot generate" in caplog.text
    assert len(load_training_samples(config)) == 4  # GRPO needs no chain: every line is a prompt


def test_pixel_boxes_refer_to_the_resized_target_image(synth_dir):
    """Qwen2.5-VL answers in pixels of the resized image; synthetic samples carry no recorded size."""
    config = sft_config(Path("unused"), [synth_dir / "train.jsonl"], Path("unused"), coords="pixels")
    turns = load_training_conversations(config)[0]
    (sample,) = turns
    written = conversation_messages(turns, config)[-1]["content"][0]["text"]
    size = resized_size(probe_image(sample.target_path))
    assert size == (112, 112)
    assert written == answer_text(sample.box, coords="pixels", size=size, think=sample.cot)


# --- the assistant-only mask, token by token -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_qwen_vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with the real 151k Qwen vocabulary, so the template tokenizes as on a real checkpoint."""
    from univg.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen-vocab", vocab="qwen", seed=0)


def expected_assistant_mask(input_ids: list[int], tokenizer: Any) -> list[bool]:
    """True on the tokens of each assistant turn: after `<|im_start|>assistant\\n`, up to and including
    its `<|im_end|>` and the newline after it; found from the token ids alone, not from TRL's masks."""
    im_start, im_end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    header = tokenizer.encode("assistant\n", add_special_tokens=False)
    newline = tokenizer.encode("\n", add_special_tokens=False)
    mask = [False] * len(input_ids)
    position = 0
    while position < len(input_ids):
        if input_ids[position] == im_start and input_ids[position + 1 : position + 1 + len(header)] == header:
            position += 1 + len(header)
            while input_ids[position] != im_end:
                mask[position] = True
                position += 1
            mask[position] = True  # <|im_end|>
            if input_ids[position + 1 : position + 1 + len(newline)] == newline:
                for offset in range(1, 1 + len(newline)):
                    mask[position + offset] = True
        position += 1
    return mask


@pytest.mark.parametrize(("vocab", "box_tags"), [("trained", False), ("qwen", False), ("qwen", True)])
def test_loss_is_on_the_assistant_turns_only(
    vocab, box_tags, tiny_model_dir, tiny_qwen_vocab_dir, dialogue_file, synth_dir, tmp_path
):
    model_dir = tiny_model_dir if vocab == "trained" else tiny_qwen_vocab_dir
    config = sft_config(
        model_dir,
        [dialogue_file, synth_dir / "train.jsonl"],
        tmp_path,
        train_ratios=[1.0, 0.25],
        answer_box_tags=box_tags,
    )
    trainer = build_sft_trainer(config)
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    assert sum(row["num_turns"] == 2 for row in rows) == 2 and len(rows) == 8
    assert all(len(row["images"]) > 1 for row in rows if row["num_turns"] == 2)
    batch = trainer.data_collator(rows)
    tokenizer = trainer.processing_class.tokenizer
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    conversations = {c[0].id: c for c in load_training_conversations(config)}
    for row, input_ids, labels, attention in zip(
        rows,
        batch["input_ids"].tolist(),
        batch["labels"].tolist(),
        batch["attention_mask"].tolist(),
        strict=True,
    ):
        length = sum(attention)
        wanted = expected_assistant_mask(input_ids[:length], tokenizer) + [False] * (len(input_ids) - length)
        for position, (token, label, trained) in enumerate(zip(input_ids, labels, wanted, strict=True)):
            assert label == (token if trained else -100), (row["id"], position, tokenizer.decode([token]))
        assert image_pad in input_ids and all(
            label == -100 for token, label in zip(input_ids, labels, strict=True) if token == image_pad
        )
        learnt = tokenizer.decode([t for t, label in zip(input_ids, labels, strict=True) if label != -100])
        answers = [
            answer_text(
                turn.box, think=turn.cot, simple_reference=is_simple_reference(turn), box_tags=box_tags
            )
            for turn in conversations[row["id"]]
        ]
        assert learnt == "".join(f"{answer}<|im_end|>\n" for answer in answers)
        assert ("<|box_start|>" in learnt) == box_tags


# --- too long: dropped, counted, listed -----------------------------------------------------------


def checked_lengths(model_dir: Path, synth_dir: Path, out: Path, *, box_tags: bool) -> dict[str, int]:
    """Each conversation's counted token length, asserted equal to what the collator builds."""
    probe = build_sft_trainer(
        sft_config(model_dir, [synth_dir / "train.jsonl"], out, max_length=None, answer_box_tags=box_tags)
    )
    conversations = load_training_conversations(probe.args)
    lengths = {c[0].id: conversation_length(c, probe.args, probe.processing_class) for c in conversations}
    for row in probe.train_dataset:  # the count is exact: what the collator builds, image tokens included
        assert len(probe.data_collator([row])["input_ids"][0]) == lengths[row["id"]]
    return lengths


def test_the_length_count_holds_for_answers_in_box_tags(tiny_model_dir, synth_dir, tmp_path):
    assert checked_lengths(tiny_model_dir, synth_dir, tmp_path, box_tags=True)


def test_overlong_conversations_are_dropped_counted_and_listed(tiny_model_dir, synth_dir, tmp_path, caplog):
    lengths = checked_lengths(tiny_model_dir, synth_dir, tmp_path, box_tags=False)
    max_length = sorted(lengths.values())[len(lengths) // 2]
    too_long = {sample_id for sample_id, length in lengths.items() if length > max_length}
    assert 0 < len(too_long) < len(lengths)
    config = sft_config(
        tiny_model_dir, [synth_dir / "train.jsonl"], tmp_path / "run", max_length=max_length, max_steps=2
    )
    trainer = build_sft_trainer(config)
    assert set(trainer.train_dataset["id"]) == set(lengths) - too_long
    report = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, DroppedReport))
    assert {d.id for d in report.dropped} == too_long
    with caplog.at_level(logging.WARNING, logger="univg.training.sft"):
        trainer.train()  # every batch fits: no truncation, so image tokens and features always match
    message = next(
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "longer than max_length" in r.getMessage()
    )
    assert message.startswith(f"{len(too_long)} of {len(lengths)} conversations")
    assert all(sample_id in message for sample_id in too_long)
    listed = json.loads((tmp_path / "run" / DROPPED_FILE).read_text())
    assert {d["id"] for d in listed["dropped"]} == too_long and listed["max_length"] == max_length
    assert all(d["num_tokens"] > max_length for d in listed["dropped"])


def test_every_conversation_too_long_is_a_clear_error(tiny_model_dir, synth_dir, tmp_path):
    with pytest.raises(ValueError, match="all 24 conversations are longer than max_length=10"):
        build_sft_trainer(sft_config(tiny_model_dir, [synth_dir / "train.jsonl"], tmp_path, max_length=10))


def test_a_model_that_writes_other_coordinates_is_refused(tiny_model_dir, synth_dir, tmp_path):
    config = sft_config(tiny_model_dir, [synth_dir / "train.jsonl"], tmp_path, coords="pixels")
    with pytest.raises(ValueError, match=r"coords='pixels' but .* writes qwen2vl boxes"):
        build_sft_trainer(config)


# --- training: loss falls, resume is exact -------------------------------------------------------


def test_training_loss_falls_on_synthetic_data(tiny_model_dir, synth_dir, tmp_path):
    config = sft_config(tiny_model_dir, [synth_dir / "train.jsonl"], tmp_path, max_steps=30)
    result = train_sft(config)
    losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
    assert len(losses) == 15
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses  # measured: 5.9 -> 1.8
    reloaded = load_model_and_processor(tmp_path)
    assert reloaded.model.config.model_type == "qwen2_vl"


class StopAt(TrainerCallback):
    """Ends training right after step `step` (and its checkpoint), as a killed job would have."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tiny_model_dir, synth_dir, tmp_path):
    common = {"max_steps": 4, "save_strategy": "steps", "save_steps": 2, "learning_rate": 5e-3}
    full = train_sft(sft_config(tiny_model_dir, [synth_dir / "train.jsonl"], tmp_path / "full", **common))
    interrupted_config = sft_config(tiny_model_dir, [synth_dir / "train.jsonl"], tmp_path / "cut", **common)

    def interrupted():
        trainer = build_sft_trainer(interrupted_config)
        trainer.add_callback(StopAt(2))
        return trainer

    assert run_trainer(interrupted, interrupted_config.output_dir).global_step == 2
    assert (tmp_path / "cut" / "checkpoint-2").is_dir()
    resumed = train_sft(interrupted_config, resume=True)
    assert resumed.global_step == full.global_step == 4

    start = load_model_and_processor(tiny_model_dir).model.state_dict()
    expected = load_model_and_processor(tmp_path / "full").model.state_dict()
    actual = load_model_and_processor(tmp_path / "cut").model.state_dict()
    assert any(not torch.equal(start[name], value) for name, value in expected.items())
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=0, atol=1e-6, msg=name)


def test_resume_without_a_checkpoint_fails_fast(tmp_path):
    config = sft_config(Path("no-model"), [Path("no.jsonl")], tmp_path)
    with pytest.raises(ValueError, match="no checkpoint-N folder"):
        train_sft(config, resume=True)


# --- which parts train ---------------------------------------------------------------------------


def test_parts_are_frozen_as_configured(tiny_model_dir, synth_dir, tmp_path):
    trainer = build_sft_trainer(
        sft_config(tiny_model_dir, [synth_dir / "train.jsonl"], tmp_path, freeze_vision_tower=True)
    )
    trainable = {model_part(n) for n, p in trainer.model.named_parameters() if p.requires_grad}
    frozen = {model_part(n) for n, p in trainer.model.named_parameters() if not p.requires_grad}
    assert trainable == {"merger", "llm"} and frozen == {"vision_tower"}
    assert model_part("model.visual.merger.mlp.0.weight") == "merger"
    assert model_part("model.visual.blocks.0.attn.qkv.weight") == "vision_tower"
    assert model_part("model.language_model.layers.0.mlp.up_proj.weight") == "llm"
    with pytest.raises(ValueError, match="nothing would train"):
        sft_config(
            tiny_model_dir, [], tmp_path, freeze_vision_tower=True, freeze_merger=True, freeze_llm=True
        )


def test_lora_trains_adapters_on_the_unfrozen_parts_and_saves_a_loadable_adapter(
    tiny_model_dir, synth_dir, tmp_path
):
    config = sft_config(
        tiny_model_dir, [synth_dir / "train.jsonl"], tmp_path, use_peft=True, freeze_merger=True, max_steps=2
    )
    trainer = build_sft_trainer(config)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    adapted = {model_part(n.replace("base_model.model.", "").split(".lora_")[0]) for n in trainable}
    assert adapted == {"vision_tower", "llm"}
    run_trainer(lambda: trainer, config.output_dir)
    assert (tmp_path / "adapter_config.json").is_file()
    assert load_model_and_processor(tmp_path).model.config.model_type == "qwen2_vl"


# --- recipes and CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["7b", "2b"])
def test_paper_recipes_hold_the_paper_settings(size):
    recipe = RECIPES / "sft" / f"paper_{size}.yaml"
    config = parse_config(
        UniVGSFTConfig, ["--config", str(recipe), "--use_cpu", "true"]
    )  # bf16 needs a device
    assert config.model_name_or_path == f"Qwen/Qwen2-VL-{size.upper()}-Instruct"
    assert config.learning_rate == 5e-6 and config.max_pixels == 401408 and config.bf16
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps * 8 == 24
    assert len(config.train_files) == 2 and config.assistant_only_loss
    assert config.freeze_vision_tower and not config.freeze_llm


def test_demo_recipe_parses_with_overrides(tmp_path):
    config = parse_config(
        UniVGSFTConfig,
        ["--config", str(RECIPES / "sft" / "demo.yaml"), "--max_steps", "7", "--output_dir", str(tmp_path)],
    )
    assert config.max_steps == 7 and config.output_dir == str(tmp_path)
    assert not (config.freeze_vision_tower or config.freeze_merger or config.freeze_llm)


def test_accelerate_configs_cover_ddp_fsdp_and_zero():
    import yaml

    kinds = {
        name: yaml.safe_load((RECIPES / "accelerate" / f"{name}.yaml").read_text())
        for name in ("ddp", "fsdp", "zero2", "zero3")
    }
    assert kinds["ddp"]["distributed_type"] == "MULTI_GPU"
    assert kinds["fsdp"]["distributed_type"] == "FSDP"
    assert kinds["fsdp"]["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert kinds["zero2"]["deepspeed_config"]["zero_stage"] == 2
    assert kinds["zero3"]["deepspeed_config"]["zero_stage"] == 3


def test_cli_lists_the_sft_stage():
    from univg.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "sft", "--help"])
    assert exit_info.value.code == 0


@pytest.mark.slow
def test_two_process_run_completes(tiny_model_dir, synth_dir, tmp_path):
    # `accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is set up (accelerate
    # 1.15); torchrun with ACCELERATE_USE_CPU gives two gloo processes, which Accelerate picks up.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "univg", "train", "sft", "--config", str(RECIPES / "sft" / "demo.yaml"),
         "--model_name_or_path", str(tiny_model_dir), "--train_files", str(synth_dir / "train.jsonl"),
         "--output_dir", str(tmp_path), "--max_steps", "6", "--save_steps", "3", "--per_device_train_batch_size", "2",
         "--logging_steps", "1"],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "trained 6 steps" in result.stdout
    assert result.stdout.count("trained 6 steps") == 1  # one report, from the main process
    assert sorted(p.name for p in (tmp_path / "checkpoint-6").glob("rng_state*.pth")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]  # one RNG state per process: two processes really ran
    state = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert load_model_and_processor(tmp_path).model.config.model_type == "qwen2_vl"
