"""`agentgym train`: exact resume, a clean stop on SIGINT/SIGTERM, configs that load, errors
that name the key."""

import json
import signal
import threading
from pathlib import Path

import pytest
from agentgym.trainers import build_trainer
from agentgym.trainers.config import load_train_config

from agentgym.cli import main
from agentgym.config import ConfigError
from tests.test_train_support import (  # noqa: F401 (fixtures)
    ctrl_c_raises,
    one_torch_thread,
    signal_during_step,
    tiny_config,
)

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
    # SIGTERM during step 2 (index): the step ends, and the run stops with a checkpoint of 3 steps.
    signal_during_step(build_trainer(tiny_config(tmp_path / "b", *settings)), step=2).train()
    assert len(_metrics(tmp_path / "b")) == 3
    resumed = build_trainer(tiny_config(tmp_path / "b", *settings, "resume=true"))
    resumed.train()

    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [r["step"] for r in b] == [0, 1, 2, 3]
    assert a == b  # rewards, losses, grad norms, horizons, evaluations: all identical
    assert sum(r["grad_norm"] > 0 for r in a) >= 2, "the run must actually train"


def test_sigterm_during_training_checkpoints_and_resumes_to_the_uninterrupted_metrics(tmp_path, capsys):
    settings = ["steps=3", "checkpoint_every=0"]  # no checkpoint but the stop's
    build_trainer(tiny_config(tmp_path / "a", *settings)).train()
    before = signal.getsignal(signal.SIGTERM)
    result = signal_during_step(build_trainer(tiny_config(tmp_path / "b", *settings)), step=1).train()
    assert result["stopped"] == "SIGTERM" and result["step"] == 2  # the step in progress ended
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step-000002"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler lives as long as the steps
    ckpt = tmp_path / "b" / "checkpoints" / "step-000002"
    line = f"stopped by SIGTERM after step 2 of 3: checkpoint {ckpt}; continue with resume=true"
    assert line in capsys.readouterr().err.splitlines()
    build_trainer(tiny_config(tmp_path / "b", *settings, "resume=true")).train()
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_second_signal_while_stopping_interrupts_at_once(tmp_path):
    """A user who presses Ctrl-C twice quits without waiting for the step to end."""
    trainer = signal_during_step(build_trainer(tiny_config(tmp_path, "steps=2")), step=0, sig=signal.SIGINT, times=2)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()  # step 0 never ended
    assert trainer.pool is None  # closed on the way out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_training_off_the_main_thread_runs_without_signal_handlers(tmp_path):
    """Only the main thread may set signal handlers (a notebook's or a server's worker thread
    may still train)."""
    results, errors = [], []

    def train() -> None:
        try:
            results.append(build_trainer(tiny_config(tmp_path, "steps=1")).train())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    assert errors == [] and results[0]["step"] == 1 and results[0]["stopped"] is None


def test_a_signal_the_process_ignores_stays_ignored_during_training(tmp_path):
    """A background job of a shell script ignores SIGINT: training does not take it over."""
    trainer = build_trainer(tiny_config(tmp_path, "steps=1"))
    update, seen = trainer.update, []

    def update_and_look(trajs: list, horizon: int) -> dict[str, float]:
        seen.append(signal.getsignal(signal.SIGINT))
        return update(trajs, horizon)

    trainer.update = update_and_look
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        trainer.train()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIG_IGN]


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
        "rollout.summarize.max_summaries=2",
        "rollout.backend=ray",
        "rollout.num_workers=1",
        "grpo.mask_overlong=false",
        "grpo.mask_over_turn=false",
    )
    with build_trainer(cfg) as trainer:  # closes its pool (and the Ray it started)
        trajs, _ = trainer.collect(0, 6)
    multi = [t for t in trajs if len(t.segments) > 1]
    assert multi, "no episode was summarized: the context window must be small enough"
    assert all(t.segments[0].kind == "summary" for t in multi)
    for t in trajs:  # the rollout's reward is real: wins end the episode
        assert t.reward in (0.0, 1.0)
    metrics = trainer.update(trajs, 6)
    assert metrics["rows_trained"] == sum(len(t.segments) for t in trajs)  # every segment trains
    assert metrics["grad_norm"] > 0


# ------------------------------------------------------------------ the run's contracts

WARM = [
    "warm_start.enabled=true",
    "warm_start.oracle=tests.test_train_support:CoinOracle",
    "warm_start.oracle_kwargs={}",
    "warm_start.episodes=8",
    "warm_start.horizon=2",
    "warm_start.backend=plain",
    "warm_start.lr=0.05",
]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_the_kl_reference_is_the_warm_started_policy(tmp_path, lora):
    """RL starts from the warm start, so the KL to the reference is 0 at its first update."""
    cfg = tiny_config(tmp_path, *WARM, "steps=1", "grpo.kl_coef=0.1", f"lora.enabled={str(lora).lower()}", "lora.r=4")
    trainer = build_trainer(cfg)
    trainer.train()
    first = next(r for r in _metrics(tmp_path) if r.get("horizon"))
    warm = next(r for r in _metrics(tmp_path) if r.get("warm_start"))
    assert warm["sft_loss_after"] != warm["sft_loss_before"]  # the warm start moved the weights
    assert abs(first["kl"]) < 1e-6


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_resumed_run_restores_the_warm_started_kl_reference(tmp_path):
    settings = [*WARM, "steps=3", "checkpoint_every=1", "grpo.kl_coef=0.1", "lora.enabled=true", "lora.r=4"]
    build_trainer(tiny_config(tmp_path / "a", *settings)).train()
    signal_during_step(build_trainer(tiny_config(tmp_path / "b", *settings)), step=1, sig=signal.SIGINT).train()
    assert (tmp_path / "b" / "checkpoints" / "step-000002" / "reference.pt").exists()
    build_trainer(tiny_config(tmp_path / "b", *settings, "resume=true")).train()
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [r["kl"] for r in a if "kl" in r][-1] > 0  # the policy moved away from its reference...
    assert a == b  # ...and the resumed run measures the same distance to the same reference


def test_one_rollout_pool_serves_every_step_the_evaluations_and_the_warm_start(tmp_path, monkeypatch):
    from agentgym.rollout import RolloutPool

    opened, closed = [], []
    init, close = RolloutPool.__init__, RolloutPool.close
    monkeypatch.setattr(RolloutPool, "__init__", lambda self, *a, **k: (opened.append(self), init(self, *a, **k))[1])
    monkeypatch.setattr(RolloutPool, "close", lambda self: (closed.append(self), close(self))[1])
    cfg = tiny_config(tmp_path, *WARM, "steps=3", "eval.at_start=true", "eval.at_end=true", "eval.every=1")
    cfg.eval.horizons, cfg.eval.num_tasks, cfg.eval.samples_per_task = [1, 2], 2, 1
    build_trainer(cfg).train()
    assert len(opened) == 1 and closed == opened


def test_evaluations_during_training_run_each_horizon_when_the_agent_sees_its_budget(tmp_path):
    cfg = tiny_config(tmp_path, "steps=1", "rollout.budget_tracker=true", "eval.horizons=[1,2]", "eval.num_tasks=2")
    trainer = build_trainer(cfg)
    trainer.evaluate(0, 2)
    summary = json.loads((tmp_path / "eval" / "step-000000" / "results.json").read_text())
    assert summary["sweep"] == "rerun"
    trainer.close()


def test_dr_grpo_constant_normaliser_is_the_same_at_every_step(tmp_path):
    """rollouts per step x max_new_tokens x the curriculum's largest horizon, whatever the
    horizon of the step and the number of rows (keep_last_k makes a row per turn)."""
    cfg = tiny_config(tmp_path, "grpo.loss_norm=constant", "curriculum.kind=stepwise", "curriculum.rounds=[1,2,3]")
    with build_trainer(cfg) as trainer:
        short, _ = trainer.collect(0, 1)
        long, _ = trainer.collect(1, 3)
        from agentgym.trainers.common import rows_from_trajectories

        norms = {trainer.loss_normaliser(rows_from_trajectories(t)) for t in (short, long, short[:3])}
    assert norms == {2 * 4 * 4 * 3.0}  # 2 tasks x 4 samples x 4 tokens x horizon 3


def test_training_refuses_settings_that_make_rollouts_off_policy_or_an_oracle_it_cannot_name():
    with pytest.raises(ConfigError, match=r"top_p=0\.9.*off-policy"):
        load_train_config(None, ["sampling.top_p=0.9"])
    with pytest.raises(ConfigError, match=r"top_k=20"):
        load_train_config(None, ["sampling.top_k=20"])
    with pytest.raises(ConfigError, match=r"sampling\.temperature must be > 0"):
        load_train_config(None, ["sampling.temperature=0"])
    with pytest.raises(ConfigError, match=r"warm_start\.source=oracle needs warm_start\.oracle"):
        load_train_config(None, ["warm_start.enabled=true"])


DAMAGES = {
    "empty-optim": lambda ckpt: (ckpt / "optim.pt").write_bytes(b""),
    "half-model": lambda ckpt: (ckpt / "model.pt").write_bytes((ckpt / "model.pt").read_bytes()[:1000]),
    "cut-state": lambda ckpt: (ckpt / "state.json").write_text((ckpt / "state.json").read_text()[:20]),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_resume_skips_a_damaged_latest_checkpoint_for_the_newest_intact_one(tmp_path, capsys, damage):
    settings = ["steps=3", "checkpoint_every=1", "keep_checkpoints=3"]
    build_trainer(tiny_config(tmp_path / "a", *settings)).train()
    signal_during_step(build_trainer(tiny_config(tmp_path / "b", *settings)), step=1).train()
    DAMAGES[damage](tmp_path / "b" / "checkpoints" / "step-000002")
    with open(tmp_path / "b" / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 2, "reward_me')  # the interruption cut the log's last line too
    build_trainer(tiny_config(tmp_path / "b", *settings, "resume=true")).train()
    err = capsys.readouterr().err
    assert "skipping a damaged checkpoint" in err and "step-000002" in err and "step-000001" in err
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")


def test_a_damaged_checkpoint_changes_nothing_before_it_fails(tmp_path):
    import torch
    from agentgym.trainers.checkpoint import CheckpointError, load_checkpoint

    trainer = build_trainer(tiny_config(tmp_path, "steps=1"))
    trainer.train()
    ckpt = tmp_path / "checkpoints" / "step-000001"
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)  # different from the checkpoint's weights
    before = {n: p.clone() for n, p in trainer.model.state_dict().items()}
    (ckpt / "optim.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"step-000001: optim\.pt cannot be read"):
        load_checkpoint(ckpt, trainer.model, trainer.modules, trainer.optimizer, trainer.scheduler)
    assert all(torch.equal(before[n], p) for n, p in trainer.model.state_dict().items())
