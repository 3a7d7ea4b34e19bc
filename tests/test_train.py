"""`agentgym train`: exact resume, configs that load, errors that name the key."""

import json
from pathlib import Path

import pytest
from agentgym.trainers import build_trainer

from agentgym.cli import main
from agentgym.config import ConfigError
from agentgym.train_config import load_train_config
from tests.test_train_support import one_torch_thread, tiny_config  # noqa: F401 (autouse fixture)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_interrupted_then_resumed_run_matches_an_uninterrupted_one(tmp_path, lora):
    settings = [
        "steps=4",
        "checkpoint_every=2",
        "optim.schedule=linear",
        "curriculum.kind=adaptive",
        "curriculum.rounds=[1,2]",
        "curriculum.success_above=0.3",
        "curriculum.window=1",
        "eval.every=2",
        "eval.horizons=[1,2]",
        "eval.num_tasks=2",
        "eval.samples_per_task=1",
        f"lora.enabled={str(lora).lower()}",
        "lora.r=4",
    ]
    build_trainer(tiny_config(tmp_path / "a", *settings)).train()
    # Interrupted after step 2 (index): its checkpoint is at 2 steps, so step 2 is redone.
    build_trainer(tiny_config(tmp_path / "b", *settings)).train(until=3)
    assert len(_metrics(tmp_path / "b")) == 3
    resumed = build_trainer(tiny_config(tmp_path / "b", *settings, "resume=true"))
    resumed.train()

    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [r["step"] for r in b] == [0, 1, 2, 3]
    assert a == b  # rewards, losses, grad norms, horizons, evaluations: all identical
    assert sum(r["grad_norm"] > 0 for r in a) >= 2, "the run must actually train"


def test_checkpoint_holds_model_optimizer_scheduler_curriculum_and_rng(tmp_path):
    trainer = build_trainer(tiny_config(tmp_path, "steps=1"))
    trainer.train()
    ckpt = tmp_path / "checkpoints" / "step-000001"
    assert {p.name for p in ckpt.iterdir()} == {"model.pt", "modules.pt", "optim.pt", "rng.pt", "state.json"}
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 1 and "curriculum" in state and state["last_metrics"]["reward_mean"] >= 0


@pytest.mark.parametrize("name", ["quickstart", "web_grpo", "tools_grpo", "search_grpo"])
def test_shipped_configs_load_and_validate(name):
    cfg = load_train_config(str(CONFIGS / f"{name}.yaml"))
    assert cfg.curriculum.kind == "stepwise" and cfg.algo == "grpo"
    if name != "quickstart":  # the papers' GPU settings
        assert cfg.optim.lr == 1e-6 and cfg.grpo.kl_coef == 0.001 and cfg.samples_per_task == 8
    else:
        assert cfg.warm_start.enabled and cfg.policy.model == "smollm2-135m"


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"grpo\.eps_hgih.*did you mean 'grpo\.eps_high'"):
        load_train_config(None, ["grpo.eps_hgih=0.3"])
    with pytest.raises(ConfigError, match=r"optim\.lr must be a number"):
        load_train_config(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"curriculum\.kind must be one of"):
        load_train_config(None, ["curriculum.kind=stepwize"])
    with pytest.raises(ConfigError, match=r"samples_per_task must be >= 2 for GRPO"):
        load_train_config(None, ["samples_per_task=1"])


def test_cli_train_reports_config_errors_and_lists_keys(capsys):
    assert main(["train", "steps=0"]) == 2
    assert "steps" in capsys.readouterr().err
    assert main(["train", "--help-config"]) == 0
    assert "curriculum.rounds" in capsys.readouterr().out


def test_training_rollouts_summarize_and_run_on_ray(tmp_path):
    """The trainer's rollouts take the context strategy and the env backend from `rollout.*`:
    SUPO summaries split episodes into segments that all train, with envs in Ray actors."""
    cfg = tiny_config(
        tmp_path,
        "steps=1",
        "curriculum.start=6",
        "rollout.context=summarize",
        "rollout.max_context_tokens=200",
        "rollout.max_summaries=2",
        "rollout.backend=ray",
        "rollout.num_workers=1",
        "grpo.mask_overlong=false",
        "grpo.mask_over_turn=false",
    )
    trainer = build_trainer(cfg)
    trajs, _ = trainer.collect(0, 6)
    multi = [t for t in trajs if len(t.segments) > 1]
    assert multi, "no episode was summarized: the context window must be small enough"
    assert all(t.segments[0].kind == "summary" for t in multi)
    for t in trajs:  # the rollout's reward is real: wins end the episode
        assert t.reward in (0.0, 1.0)
    metrics = trainer.update(trajs, 6)
    assert metrics["rows_trained"] == sum(len(t.segments) for t in trajs)  # every segment trains
    assert metrics["grad_norm"] > 0
