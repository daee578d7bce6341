import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback
from trl import GRPOTrainer
from trl.trainer.utils import split_pixel_values_by_grid, split_tensor_dict, unsplit_pixel_values_by_grid

from univg.training.config import parse_config
from univg.training.grpo import (
    DifficultyAwareGRPOTrainer,
    UniVGGRPOConfig,
    objective_departures,
    objective_summary,
    resolve_reward,
)

sys.path.insert(0, str(Path(__file__).parent))
from grpo_checks import build_trainer, check_weights_on_one_batch, planted_reward


@pytest.mark.parametrize("weighting", ["exp", "log", "square", "none"])
def test_weights_are_phi_of_the_group_mean_with_local_batch_smaller_than_the_group(
    tiny_varied_model_dir, synth_dir, tmp_path, weighting
):
    trainer = build_trainer(
        tiny_varied_model_dir, synth_dir, tmp_path, weighting=weighting, per_device_batch=2
    )
    result = check_weights_on_one_batch(trainer)
    assert result["local_means_differ_from_group_means"], "the check must tell group means from local means"
    assert len(set(result["group_means"])) > 1


def test_no_weighting_reproduces_stock_trl_loss(tiny_varied_model_dir, synth_dir, tmp_path):
    ours = build_trainer(tiny_varied_model_dir, synth_dir, tmp_path / "ours", weighting="none", bf16=False)
    stock = GRPOTrainer(
        model=ours.model,
        reward_funcs=[planted_reward],
        args=ours.args,
        train_dataset=ours.train_dataset,
        processing_class=ours.processing_class,
    )
    # same sampling settings (ours also never samples vision tokens), and a policy that has moved away
    # from the reference, so the KL term is part of the compared loss
    stock.generation_kwargs["suppress_tokens"] = ours.generation_kwargs["suppress_tokens"]
    stock.generation_config.suppress_tokens = ours.generation_config.suppress_tokens
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for parameter in ours.model.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    batch = next(iter(ours.get_train_dataloader()))
    results = []
    for trainer in (ours, stock):
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by train(); we call compute_loss directly
        torch.manual_seed(7)
        inputs = trainer._generate_and_score_completions(batch)
        first_rows = unsplit_pixel_values_by_grid(split_tensor_dict(split_pixel_values_by_grid(inputs), 4)[0])
        results.append((inputs, trainer.compute_loss(trainer.model, first_rows).item()))
    (ours_inputs, ours_loss), (stock_inputs, stock_loss) = results
    torch.testing.assert_close(ours_inputs["completion_ids"], stock_inputs["completion_ids"])
    torch.testing.assert_close(ours_inputs["advantages"], stock_inputs["advantages"])
    assert abs(ours_loss) > 1e-4  # half a group and a moved policy: a loss that can tell them apart
    assert ours_loss == pytest.approx(stock_loss, rel=1e-6)


def test_training_logs_difficulty_metrics_every_step(tiny_varied_model_dir, synth_dir, tmp_path):
    # 2 completions per device and micro-batch, 2 micro-batches per optimizer step: one group per step
    trainer = build_trainer(
        tiny_varied_model_dir, synth_dir, tmp_path, max_steps=2, steps_per_generation=2,
        gradient_accumulation_steps=2,
    )  # fmt: skip
    trainer.train()
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(steps) == 2
    for entry in steps:
        shares = entry["difficulty/easy"] + entry["difficulty/medium"] + entry["difficulty/hard"]
        assert shares == pytest.approx(1.0)
        assert 0.0 <= entry["difficulty/zero_variance_groups"] <= 1.0
        assert entry["difficulty/phi_mean"] >= 1.0  # exp(1 - m) >= 1
        assert "rewards/planted_reward/mean" in entry


class KillAfterStep(TrainerCallback):
    """Stops training right after a step, as a kill after a checkpoint would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_resume_after_interruption_gives_the_same_next_step(tiny_varied_model_dir, synth_dir, tmp_path):
    # one generation per optimizer step, so a checkpoint never falls inside a buffered generation batch
    common = {
        "max_steps": 3, "save_strategy": "steps", "save_steps": 2, "learning_rate": 5e-3,
        "steps_per_generation": 2, "gradient_accumulation_steps": 2,
    }  # fmt: skip
    full = build_trainer(tiny_varied_model_dir, synth_dir, tmp_path / "full", **common)
    full.train()
    interrupted = build_trainer(tiny_varied_model_dir, synth_dir, tmp_path / "cut", **common)
    interrupted.add_callback(KillAfterStep(2))
    interrupted.train()
    assert interrupted.state.global_step == 2 and (tmp_path / "cut" / "checkpoint-2").is_dir()
    resumed = build_trainer(tiny_varied_model_dir, synth_dir, tmp_path / "cut", **common)
    resumed.train(resume_from_checkpoint=True)

    def step(trainer, number):
        return next(e for e in trainer.state.log_history if e.get("step") == number and "loss" in e)

    # the KL term is nonzero only if the resumed run really continued from the checkpoint's weights
    assert step(resumed, 3)["kl"] > 0.0
    for name in ("loss", "kl", "reward", "grad_norm", "learning_rate"):
        assert step(resumed, 3)[name] == pytest.approx(step(full, 3)[name], rel=1e-5), name
    resumed_state = resumed.model.state_dict()
    for name, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed_state[name], value)


def test_config_from_yaml_recipe_with_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model_name_or_path: some/model\ntrain_files: [a.jsonl, b.jsonl]\ntrain_ratios: [1.0, 0.5]\n"
        "difficulty_weighting: log\nnum_generations: 8\nlearning_rate: 1.0e-6\noutput_dir: out\nuse_cpu: true\n"
    )
    config = parse_config(UniVGGRPOConfig, ["--config", str(recipe), "--difficulty_weighting", "square"])
    assert config.difficulty_weighting == "square"
    assert config.train_files == ["a.jsonl", "b.jsonl"] and config.train_ratios == [1.0, 0.5]
    assert config.learning_rate == 1e-6 and config.num_generations == 8
    with pytest.raises(ValueError, match="difficulty_weighting must be one of"):
        UniVGGRPOConfig(output_dir=str(tmp_path), use_cpu=True, difficulty_weighting="cubic")
    with pytest.raises(ValueError, match="loss_type must be one of"):
        UniVGGRPOConfig(output_dir=str(tmp_path), use_cpu=True, loss_type="vespo")


def test_defaults_are_the_papers_objective(tmp_path):
    config = UniVGGRPOConfig(output_dir=str(tmp_path), use_cpu=True)
    assert (config.loss_type, config.beta, config.use_bias_correction_kl) == ("grpo", 0.04, False)
    assert (config.scale_rewards, config.multi_objective_aggregation) == ("group", "sum_then_normalize")
    assert config.max_completion_length == 256 and config.num_generations == 8
    assert config.dtype == "float32" and config.freeze_vision_tower and config.freeze_merger
    assert not config.freeze_llm and not config.use_peft
    assert (config.reward_funcs, config.difficulty_reward) == (["accuracy", "format"], "accuracy")
    assert objective_departures(config) == []
    assert objective_summary(config).endswith("departures from the paper: none")


DEPARTURES = [
    ({"loss_type": "dapo"}, "loss_type dapo"),
    ({"use_bias_correction_kl": True}, "use_bias_correction_kl"),
    ({"beta": 0.0}, "no KL term"),
    ({"scale_rewards": "batch"}, "scale_rewards batch"),
    ({"scale_rewards": "none"}, "scale_rewards none"),
    ({"multi_objective_aggregation": "normalize_then_sum"}, "multi_objective_aggregation"),
    ({"reward_funcs": ["accuracy", "format_loose"]}, "rewards"),
    ({"reward_weights": [1.0, 0.5]}, "reward_weights"),
    ({"difficulty_reward": "format"}, "phi reads the format reward"),
    ({"difficulty_weighting": "power"}, "difficulty_weighting power"),
    ({"dtype": "bfloat16"}, "dtype bfloat16"),
    ({"dtype": "auto"}, "dtype auto"),
    ({"freeze_vision_tower": False}, "frozen parts"),
    ({"freeze_llm": True, "freeze_vision_tower": False}, "frozen parts"),
    ({"use_peft": True}, "LoRA"),
    ({"num_iterations": 2}, "num_iterations 2"),
    ({"mask_truncated_completions": True}, "mask_truncated_completions"),
    ({"top_entropy_quantile": 0.2}, "top_entropy_quantile"),
]


@pytest.mark.parametrize(("override", "phrase"), DEPARTURES)
def test_every_departure_is_named_and_refused_under_paper_objective(tmp_path, override, phrase):
    config = UniVGGRPOConfig(output_dir=str(tmp_path), use_cpu=True, **override)
    departures = objective_departures(config)
    assert len(departures) == 1 and phrase in departures[0]
    assert phrase in objective_summary(config)
    with pytest.raises(ValueError, match="--paper_objective false"):
        UniVGGRPOConfig(output_dir=str(tmp_path), use_cpu=True, paper_objective=True, **override)


@pytest.mark.parametrize("weighting", ["none", "exp", "log", "square"])
def test_the_papers_phis_are_not_departures(tmp_path, weighting):
    config = UniVGGRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, difficulty_weighting=weighting, paper_objective=True
    )
    assert objective_departures(config) == []


def test_reward_resolution():
    assert resolve_reward("accuracy").__name__ == "accuracy_reward"
    assert resolve_reward("univg.core.rewards:format_reward").__name__ == "format_reward"
    assert resolve_reward("univg.core.rewards.format_reward").__name__ == "format_reward"
    with pytest.raises(ValueError, match="unknown reward"):
        resolve_reward("nonsense")
    with pytest.raises(ValueError, match="cannot import reward"):
        resolve_reward("univg.core.rewards:missing")


def test_unknown_difficulty_reward_is_a_clear_error(tiny_model_dir, synth_dir, tmp_path):
    reference = build_trainer(tiny_model_dir, synth_dir, tmp_path)
    with pytest.raises(ValueError, match="difficulty_reward 'planted' is not among"):
        DifficultyAwareGRPOTrainer(
            model=reference.model,
            reward_funcs=[resolve_reward("format")],
            args=reference.args,
            train_dataset=reference.train_dataset,
            processing_class=reference.processing_class,
        )


@pytest.mark.slow
def test_weights_are_exact_across_two_processes(tiny_varied_model_dir, synth_dir, tmp_path):
    # `accelerate launch --cpu --num_processes 2` starts ONE process unless mpirun is set up (accelerate
    # 1.15); torchrun with ACCELERATE_USE_CPU gives two gloo processes, which Accelerate picks up.
    script = Path(__file__).parent / "grpo_checks.py"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script),
         str(tiny_varied_model_dir), str(synth_dir), str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "ACCELERATE_USE_CPU": "true"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"checked-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert all(checked["processes"] == 2 for checked in ranks)
    assert ranks[0]["group_means"] == ranks[1]["group_means"]  # both ranks weighted with the same groups


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[2] / "recipes" / "grpo").glob("*.yaml")))
def test_every_grpo_recipe_parses(recipe):
    config = parse_config(UniVGGRPOConfig, ["--config", str(recipe), "--use_cpu", "true", "--bf16", "false"])
    assert config.model_name_or_path and config.train_files
    assert config.num_generations == 8
    assert config.reward_funcs == ["accuracy", "format"]


def test_mixed_length_prompts_with_a_right_padding_processor(tiny_varied_model_dir, synth_dir, tmp_path):
    """Prompts of different lengths in one generation batch (regression: mm_token_type_ids misaligned)."""
    trainer = build_trainer(
        tiny_varied_model_dir, synth_dir, tmp_path, per_device_batch=8, steps_per_generation=1
    )
    assert trainer.processing_class.tokenizer.padding_side == "left"
    config = trainer.model.config
    for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        assert getattr(config, name) in trainer.generation_kwargs["suppress_tokens"]
    batch = next(iter(trainer.get_train_dataloader()))
    lengths = {len(str(row["prompt"])) for row in batch}
    assert len(lengths) > 1
    trainer.model.train()
    output = trainer._generate_and_score_completions(batch)
    assert output["advantages"].shape == (8,)


def test_train_grpo_command_end_to_end(tiny_model_dir, synth_dir, tmp_path, capsys):
    from univg.cli.main import main

    recipe = Path(__file__).parents[2] / "recipes" / "grpo" / "demo.yaml"
    out = tmp_path / "grpo"
    code = main([
        "train", "grpo", "--config", str(recipe), "--model_name_or_path", str(tiny_model_dir),
        "--train_files", str(synth_dir / "train.jsonl"), "--output_dir", str(out), "--max_steps", "1",
        "--per_device_train_batch_size", "8", "--max_completion_length", "8", "--save_strategy", "no",
    ])  # fmt: skip
    assert code == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()
    capsys.readouterr()
    resumed = ["train", "grpo", "--config", str(recipe), "--output_dir", str(tmp_path / "none"), "--resume"]
    assert main(resumed) == 2
    assert capsys.readouterr().err == (
        f"univg train grpo: no checkpoint-N folder in {tmp_path / 'none'} to continue from; "
        "drop --resume to start a new run\n"
    )


def test_pixel_coordinate_rows_carry_the_resized_target_size(synth_dir, tmp_path):
    from univg.data.images import load_image
    from univg.training.data import load_training_samples, trl_dataset

    config = UniVGGRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, train_files=[str(synth_dir / "train.jsonl")], coords="pixels",
        max_pixels=6272,
    )  # fmt: skip
    samples = load_training_samples(config)
    dataset = trl_dataset(samples, config, with_answer=False)
    for sample, size in zip(samples, dataset["image_size"], strict=True):
        loaded = load_image(sample.target_path, min_pixels=config.min_pixels, max_pixels=config.max_pixels)
        assert tuple(size) == loaded.resized_size
