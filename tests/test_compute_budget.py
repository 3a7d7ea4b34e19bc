"""Training on a compute budget (`compute.total`): the run ends where the budget is used,
the LR schedule and the curriculum follow the fraction used, evaluations and kept
checkpoints sit at fractions of the budget, and an interrupted run resumes exactly."""

import json
import math
from pathlib import Path

import pytest
from agentgym.trainers import build_trainer
from agentgym.trainers.compute import ComputeConfig, ComputeMeter

from agentgym.config import ConfigError
from tests.test_train_support import one_torch_thread, signal_during_step, tiny_config  # noqa: F401 (fixture)


def _records(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


def _steps(out: Path) -> list[dict]:
    return [r for r in _records(out) if "eval_at" not in r]


@pytest.mark.parametrize("unit", ["generated_tokens", "env_steps", "episodes"])
def test_a_budgeted_run_ends_at_the_step_boundary_that_reaches_the_budget_and_reports_the_overshoot(tmp_path, unit):
    # 2 tasks x 4 rollouts a step; a budget of 2.5 steps' worth of episodes, or of tokens/turns.
    total = {"episodes": 20, "env_steps": 30, "generated_tokens": 100}[unit]
    result = build_trainer(tiny_config(tmp_path, "steps=50", f"compute.total={total}", f"compute.unit={unit}")).train()
    steps = _steps(tmp_path)
    used = [r["compute_used"] for r in steps]
    assert used[-1] >= total > used[-2], "the run must stop at the first step boundary past the budget"
    assert result["step"] == len(steps) < 50
    c = result["compute"]
    assert c["used"] == used[-1] and c["overshoot"] == used[-1] - total and c["reached"]
    if unit == "episodes":
        assert used == [8.0, 16.0, 24.0]
    # What a step counts is what its rollouts used.
    per_step = [b - a for a, b in zip([0.0, *used], used, strict=False)]
    key = {"episodes": None, "env_steps": "turns_mean", "generated_tokens": "generated_tokens"}[unit]
    if key == "generated_tokens":
        assert per_step == [r["generated_tokens"] for r in steps]
    elif key == "turns_mean":
        assert all(math.isclose(p, 8 * r["turns_mean"]) for p, r in zip(per_step, steps, strict=True))


def test_curriculum_and_lr_schedule_follow_the_fraction_of_the_budget_used(tmp_path):
    base_lr = 0.01
    build_trainer(
        tiny_config(
            tmp_path,
            "steps=50",
            "compute.total=60",
            "compute.unit=env_steps",
            "curriculum.kind=stepwise",
            "curriculum.rounds=[1, 2]",
            "curriculum.every_fraction=0.5",
            "optim.schedule=linear",
            f"optim.lr={base_lr}",
        )
    ).train()
    steps = _steps(tmp_path)
    assert len(steps) >= 3
    before = 0.0
    for r in steps:  # each step's horizon and LR are those of the fraction used before it
        assert r["horizon"] == (1 if before < 0.5 else 2), r
        assert math.isclose(r["lr"], base_lr * (1 - before), rel_tol=1e-9, abs_tol=1e-12), r
        before = r["compute_fraction"]
    assert {r["horizon"] for r in steps} == {1, 2}


def test_budget_evaluations_run_where_the_fraction_crosses_each_point_and_keep_their_checkpoints(tmp_path):
    build_trainer(
        tiny_config(
            tmp_path,
            "steps=50",
            "compute.total=40",
            "compute.unit=episodes",
            "compute.eval_at=[0.25, 0.5]",
            "eval.at_start=true",
            "eval.at_end=true",
            "eval.horizons=[1, 2]",
            "eval.num_tasks=2",
            "eval.samples_per_task=1",
            "keep_checkpoints=1",
            "checkpoint_every=1",
        )
    ).train()
    records = _records(tmp_path)
    evals = [(r["step"], r["compute_points"]) for r in records if "compute_points" in r]
    # 8 episodes a step: 0.25 of 40 is crossed by the 2nd step (16 used), 0.5 by the 3rd (24), the
    # end by the 5th. A step's record has its index; the start's and the end's, the steps done.
    assert evals == [(0, [0.0]), (1, [0.25]), (2, [0.5]), (5, [1.0])]
    assert all("eval.success@2" in r for r in records if "compute_points" in r)
    ckpts = tmp_path / "checkpoints"
    for f, step in (("0", 0), ("0.25", 2), ("0.5", 3), ("1", 5)):
        state = json.loads((ckpts / f"at-{f}" / "state.json").read_text())
        assert state["step"] == step
    assert sorted(p.name for p in ckpts.glob("step-*")) == ["step-000005"]  # the rolling ones still rotate


def test_an_interrupted_budgeted_run_resumes_to_the_uninterrupted_metrics(tmp_path):
    settings = [
        "steps=50",
        "compute.total=40",
        "compute.unit=generated_tokens",
        "compute.eval_at=[0.5]",
        "curriculum.kind=stepwise",
        "curriculum.rounds=[1, 2]",
        "curriculum.every_fraction=0.5",
        "optim.schedule=cosine",
        "checkpoint_every=0",
        "eval.at_end=true",
        "eval.horizons=[1, 2]",
        "eval.num_tasks=2",
        "eval.samples_per_task=1",
    ]
    build_trainer(tiny_config(tmp_path / "a", *settings)).train()
    stopped = signal_during_step(build_trainer(tiny_config(tmp_path / "b", *settings)), step=1).train()
    assert stopped["stopped"] == "SIGTERM"
    build_trainer(tiny_config(tmp_path / "b", *settings, "resume=true")).train()
    assert _records(tmp_path / "a") == _records(tmp_path / "b")


def test_a_budgeted_run_that_hits_its_step_cap_says_so(tmp_path, capsys):
    result = build_trainer(tiny_config(tmp_path, "steps=2", "compute.total=1000", "compute.unit=episodes")).train()
    assert result["step"] == 2 and not result["compute"]["reached"]
    assert (
        "reached steps=2 having used 16 of its compute budget of 1000 episodes: raise steps" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "settings, key",
    [
        (["compute.total=100", "curriculum.kind=stepwise"], "curriculum.every_fraction"),
        (["compute.total=100", "eval.every=2"], "eval.every"),
        (["curriculum.every_fraction=0.5"], "curriculum.every_fraction needs compute.total"),
        (["compute.eval_at=[0.5]"], "compute.eval_at needs compute.total"),
        (["compute.total=100", "compute.eval_at=[1.0]"], "compute.eval_at"),
        (["compute.total=0"], "compute.total"),
        (["compute.unit=seconds"], "compute.unit"),
    ],
)
def test_budget_settings_that_cannot_be_equal_compute_are_refused_naming_the_key(tmp_path, settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny_config(tmp_path, *settings)


def test_the_meter_counts_points_crossed_before_the_end_only():
    meter = ComputeMeter(ComputeConfig(total=10, unit="episodes", eval_at=[0.3, 0.6, 0.9]))
    assert meter.add(3) == [0.3]
    assert meter.add(4) == [0.6]
    assert meter.add(5) == []  # the end (12 >= 10) serves 0.9 too
    assert meter.exhausted and meter.overshoot == 2
    assert meter.points_left(0.7) == [0.9]
