"""The memory plan (`agentgym train CONFIG --dry-run`): exact parameter counts from the
shipped model configs, every shipped train config planned offline, and a run that cannot
fit its GPU refused before anything loads."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from agentgym.trainers.config import load_train_config
from agentgym.trainers.memory import ModelShape, memory_plan, model_config

from agentgym.cli import main

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml") if "eval" not in p.name)
SHIPPED = sorted((Path(__file__).resolve().parents[1] / "agentgym" / "policy" / "configs").glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_the_parameter_count_is_transformers_own_for_every_shipped_model_config(path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = json.loads(path.read_text())
    hf = AutoConfig.for_model(**{k: v for k, v in config.items() if not k.startswith("_")})
    with torch.device("meta"):  # shapes only: no memory
        model = AutoModelForCausalLM.from_config(hf)
    assert ModelShape.from_config(config).parameters() == sum(p.numel() for p in model.parameters())


def test_the_lora_count_is_peft_own():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = model_config("Qwen/Qwen2.5-1.5B-Instruct")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft = get_peft_model(model, LoraConfig(r=16, target_modules=targets))
    trained = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert ModelShape.from_config(config).lora_parameters(16, targets) == trained


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_the_dry_run_plans_every_shipped_config_offline_and_each_gpu_recipe_fits_its_hardware(path, capsys):
    cfg = load_train_config(str(path))
    overrides = [] if cfg.hardware.gpus else ["hardware.gpus=1", "hardware.gpu_memory_gb=80"]
    assert main(["train", str(path), *overrides, "--dry-run"]) == 0
    out = capsys.readouterr().out
    for term in ("weights", "gradients", "AdamW moments", "activations (no checkpointing)", "total"):
        assert term in out, term
    if cfg.hardware.gpus:  # a GPU recipe states its hardware, and fits it
        assert cfg.hardware.gpu_memory_gb and "does not fit" not in out, out


def test_the_plan_adds_up_its_terms():
    cfg = load_train_config(
        "configs/tools_grpo.yaml", ["lora.enabled=false", "policy.dtype=bfloat16", "optim.gradient_checkpointing=false"]
    )
    plan = memory_plan(cfg, device="cuda", capacity_gb=80)
    params = ModelShape.from_config(model_config(cfg.policy.model)).parameters()
    assert plan.terms["weights"] == params * 2 and plan.terms["AdamW moments"] == 4 * params
    auto = memory_plan(load_train_config("configs/tools_grpo.yaml", ["lora.enabled=false"]), "cuda", 80)
    assert auto.terms["weights"] == params * 4  # "auto" trains fp32 weights (bf16 autocast in the forward)
    assert auto.activations == pytest.approx(plan.activations)  # the activations are bf16 either way
    assert plan.total == pytest.approx(sum(plan.terms.values()) + plan.activations)
    lora = memory_plan(load_train_config("configs/tools_grpo.yaml", ["lora.enabled=true"]), "cuda", 80)
    assert lora.terms["gradients"] < auto.terms["gradients"] / 50  # only the adapter is trained (both fp32)


def test_a_run_that_cannot_fit_its_gpu_is_refused_before_anything_loads(tmp_path):
    cmd = [sys.executable, "-m", "agentgym.cli", "train", "configs/tools_grpo.yaml", "hardware.gpus=1",
           "hardware.gpu_memory_gb=24", "policy.device=cuda", f"output_dir={tmp_path}"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "error: the run needs ~" in out.stderr and "--force" in out.stderr
    assert not any(tmp_path.iterdir())  # nothing was written: it stopped before the model loaded


def test_an_unknown_model_offline_is_a_config_error_in_the_dry_run(capsys):
    assert main(["train", "configs/quickstart.yaml", "policy.model=nobody/no-such-model", "--dry-run"]) == 2
    assert "policy.model: no config.json for 'nobody/no-such-model'" in capsys.readouterr().err


def test_gradient_checkpointing_gives_the_update_of_a_plain_backward_and_lowers_the_planned_memory(tmp_path):
    from agentgym.trainers import build_trainer

    from tests.test_train_support import tiny_config

    plain = build_trainer(tiny_config(tmp_path / "a", "threads=1"))
    ckpt = build_trainer(tiny_config(tmp_path / "b", "threads=1", "optim.gradient_checkpointing=true"))
    assert ckpt.model.is_activation_checkpointing and not plain.model.is_activation_checkpointing
    trajs, _ = plain.collect(0, 2)
    metrics = []
    for t in (plain, ckpt):
        t.model.train()
        metrics.append(t.update(trajs, 2))
    assert metrics[0]["loss"] == pytest.approx(metrics[1]["loss"], rel=1e-5, abs=1e-7)
    assert metrics[0]["grad_norm"] == pytest.approx(metrics[1]["grad_norm"], rel=1e-4)
    cfg = tiny_config(tmp_path / "c", "optim.gradient_checkpointing=true")
    plan = memory_plan(cfg, device="cpu")
    assert plan.checkpointing and plan.total == pytest.approx(sum(plan.terms.values()) + plan.activations_checkpointed)


def test_on_the_cpu_the_plan_is_checked_against_the_memory_the_kernel_can_give_not_only_free_pages():
    from agentgym.trainers.memory import _detected_capacity

    lines = Path("/proc/meminfo").read_text().splitlines()
    available = next(int(line.split()[1]) for line in lines if line.startswith("MemAvailable:"))
    # A run is warned about only past MemAvailable (free pages plus the cache it can reclaim):
    # counting free pages alone warned about a 1.7 GB run on a 24 GB machine with a warm cache.
    assert _detected_capacity("cpu") == pytest.approx(available * 1024, rel=0.05)


def test_a_sharded_plan_splits_the_trained_state_over_the_gpus_and_keeps_a_whole_bf16_rollout_copy():
    """hardware.fsdp: weights, gradients, AdamW moments and the KL reference are 1/N per GPU;
    the rollouts' bf16 copy is whole on each. Unsharded, the 7B recipe cannot fit one 80 GB GPU."""
    sharded = memory_plan(load_train_config("configs/search_grpo_7b.yaml"), "cuda", 80)
    whole = memory_plan(load_train_config("configs/search_grpo_7b.yaml", ["hardware.fsdp=false"]), "cuda", 80)
    params = ModelShape.from_config(model_config("Qwen/Qwen2.5-7B-Instruct")).parameters()
    assert sharded.terms["weights (1/8 shard)"] == params * 4 / 8 == whole.terms["weights"] / 8
    assert sharded.terms["AdamW moments (1/8 shard)"] == 2 * params * 4 / 8
    assert sharded.terms["KL reference (1/8 shard)"] == params * 2 / 8  # a bf16 copy, sharded too
    assert sharded.terms["rollout weights (a copy)"] == whole.terms["rollout weights (a copy)"] == params * 2
    assert sharded.fits and not whole.fits


def test_on_a_gpu_rollouts_and_the_kl_reference_are_planned_as_bf16_copies_and_on_the_cpu_as_none():
    cfg = load_train_config("configs/search_grpo.yaml")
    params = ModelShape.from_config(model_config(cfg.policy.model)).parameters()
    gpu = memory_plan(cfg, "cuda", 80)
    assert gpu.terms["rollout weights (a copy)"] == params * 2 and gpu.terms["KL reference"] == params * 2
    cpu = memory_plan(cfg, "cpu", 80)
    assert "rollout weights (a copy)" not in cpu.terms and cpu.terms["KL reference"] == params * 4
    asynchronous = memory_plan(load_train_config("configs/search_grpo.yaml", ["async_steps=1"]), "cpu", 80)
    assert asynchronous.terms["rollout weights (a copy)"] == params * 4  # a second fp32 copy samples
