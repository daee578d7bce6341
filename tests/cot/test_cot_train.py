"""Verified lines train directly: `univg train sft --train_files COT.jsonl` on the tiny model."""

from __future__ import annotations

import logging

import torch

from univg.cli.main import main
from univg.data.schema import read_jsonl
from univg.training.data import TrainingDataArguments, conversation_messages, load_training_conversations


def test_sft_trains_on_the_verified_lines_of_a_cot_file(clean_run, tiny_model_dir, tmp_path, caplog):
    verified = {i for i, (status, _) in clean_run.outcomes.items() if status == "verified"}
    rejected = len(clean_run.outcomes) - len(verified)
    args = TrainingDataArguments(train_files=[str(clean_run.out)])
    with caplog.at_level(logging.INFO, logger="univg.training.data"):
        conversations = load_training_conversations(args)
    assert {turns[0].id for turns in conversations} == verified
    assert f"left out {rejected} lines rejected by univg cot generate" in caplog.text
    chains = {s.id: s.cot for s in read_jsonl(clean_run.out)}
    for turns in conversations:
        answer = conversation_messages(turns, args)[-1]["content"][0]["text"]
        assert answer.startswith(f"<think>{chains[turns[0].id]}</think><answer>(")  # the teacher's kept chain

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["train", "sft", "--model_name_or_path", str(tiny_model_dir), "--train_files", str(clean_run.out),
                     "--output_dir", str(tmp_path / "sft"), "--max_steps", "2", "--per_device_train_batch_size", "2",
                     "--max_pixels", "12544", "--min_pixels", "3136", "--max_length", "1024", "--use_cpu", "true",
                     "--bf16", "false", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
                     "--learning_rate", "1e-3", "--activation_checkpointing", "false"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    assert (tmp_path / "sft" / "config.json").exists() and (tmp_path / "sft" / "model.safetensors").exists()
