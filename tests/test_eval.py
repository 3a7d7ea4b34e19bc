"""agentgym eval: success vs turns, pass@k, bootstrap bands, result files and plots."""

import json
import subprocess
import sys

import gymnasium
import pytest

from agentgym.config import EvalConfig, load_config
from agentgym.eval import evaluate
from agentgym.eval.metrics import bootstrap_ci, outcome_at, pass_at_k, pass_hat_k
from agentgym.policy import ScriptedPolicy
from agentgym.trajectory import Trajectory
from tests.test_rollout import bisect

ENV = "agentgym/GuessNumber-16-v0"


def cfg(tmp_path, *overrides):
    return load_config(
        None,
        EvalConfig,
        [
            f"output_dir={tmp_path}",
            "env.num_tasks=12",
            "samples_per_task=2",
            "horizons=[1,2,3,4,8]",
            "progress=false",
            *overrides,
        ],
    )


def test_oracle_success_at_h_is_the_share_of_tasks_solvable_in_h_turns(smol_tokenizer, tmp_path):
    result = evaluate(cfg(tmp_path), ScriptedPolicy(smol_tokenizer, bisect))
    tasks = gymnasium.make(ENV).unwrapped.tasks("test")[:12]
    for h in (1, 2, 3, 4, 8):
        assert result.success_at(h) == pytest.approx(sum(t.min_turns <= h for t in tasks) / 12)
    row8 = result.rows[-1]
    assert row8["cap_hit_rate"] == 0 and row8["invalid_action_rate"] == 0 and row8["pass@2"] == 1.0
    assert row8["mean_turns_success"] == pytest.approx(sum(t.min_turns for t in tasks) / 12)


def test_prefix_sweep_equals_rerunning_each_horizon_for_a_deterministic_policy(smol_tokenizer, tmp_path):
    policy = ScriptedPolicy(smol_tokenizer, bisect)
    prefix = evaluate(cfg(tmp_path / "a", "sweep=prefix"), policy)
    rerun = evaluate(cfg(tmp_path / "b", "sweep=rerun"), policy)
    keys = ["success", "mean_turns", "cap_hit_rate", "tokens_per_episode", "tool_calls_per_episode", "pass@2"]
    for a, b in zip(prefix.rows, rerun.rows, strict=True):
        assert {k: a[k] for k in keys} == pytest.approx({k: b[k] for k in keys})


def test_result_files_are_written(smol_tokenizer, tmp_path):
    evaluate(cfg(tmp_path, "training_horizon=4"), ScriptedPolicy(smol_tokenizer, bisect))
    summary = json.loads((tmp_path / "results.json").read_text())
    assert [r["horizon"] for r in summary["horizons"]] == [1, 2, 3, 4, 8]
    assert summary["config"]["env"]["id"] == ENV
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header.startswith("horizon,episodes,tasks,success,success_ci_low,success_ci_high")
    assert (tmp_path / "success_vs_turns.png").stat().st_size > 10_000
    assert len((tmp_path / "trajectories.jsonl").read_text().splitlines()) == 24


def test_kvsum_reports_task_accuracy_by_step(smol_tokenizer, tmp_path):
    from agentgym.envs.kvsum.oracle import KVSumOracle

    def oracle(msgs):
        o = KVSumOracle()
        action = ""
        for m in msgs:
            if m["role"] == "user":
                action = o.act(m["content"])
        return action

    c = cfg(tmp_path, "env.id=agentgym/KVSum-v0", "env.kwargs={num_steps: 4}", "horizons=[2,4]")
    result = evaluate(c, ScriptedPolicy(smol_tokenizer, oracle))
    assert result.success_at(4) == 1.0 and result.success_at(2) == 0.0
    kv = result.summary["task_accuracy_by_step"]
    assert kv["task_accuracy"] == [1.0, 1.0, 1.0, 1.0] and kv["H_0.5"] is None


def test_unknown_env_id_names_the_closest(tmp_path, smol_tokenizer):
    with pytest.raises(ValueError, match="did you mean 'agentgym/GuessNumber-16-v0'"):
        evaluate(cfg(tmp_path, "env.id=agentgym/GuessNumber-61-v0"), ScriptedPolicy(smol_tokenizer, bisect))


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 4)


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_tasks():
    few = [[1.0], [0.0], [1.0], [0.0]]
    many = few * 50
    lo1, hi1 = bootstrap_ci(few, 2000)
    lo2, hi2 = bootstrap_ci(many, 2000)
    assert lo1 <= 0.5 <= hi1 and lo2 <= 0.5 <= hi2
    assert hi2 - lo2 < hi1 - lo1


@pytest.mark.parametrize(
    ("reason", "turns", "h", "expected"),
    [
        ("success", 3, 4, ("success", 3)),
        ("success", 3, 2, ("over_turn", 2)),
        ("failure", 2, 2, ("failure", 2)),
        ("aborted", 2, 3, ("aborted", 2)),
        ("aborted", 2, 2, ("over_turn", 2)),
        ("over_turn", 8, 4, ("over_turn", 4)),
    ],
)
def test_outcome_at_a_smaller_budget(reason, turns, h, expected):
    assert outcome_at(Trajectory("e", "t", end_reason=reason, turns=turns), h) == expected


def test_cli_eval_end_to_end_with_a_tiny_model_and_compare(tmp_path):
    cmd = [sys.executable, "-m", "agentgym.cli", "eval"]
    args = [
        "policy.model=tiny-random",
        "env.num_tasks=2",
        "samples_per_task=1",
        "horizons=[1,2]",
        "sampling.max_new_tokens=8",
        "progress=false",
    ]
    for name in ("a", "b"):
        out = subprocess.run(
            [*cmd, *args, f"output_dir={tmp_path / name}"], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        assert "success" in out.stdout and "plot:" in out.stdout
    out = subprocess.run(
        [*cmd, "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "c.png")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and (tmp_path / "c.png").exists()


def test_cli_eval_reports_config_errors_by_key(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "agentgym.cli", "eval", "sampling.temprature=0"], capture_output=True, text=True
    )
    assert (
        out.returncode == 2
        and "unknown config key 'sampling.temprature'; did you mean 'sampling.temperature'?" in out.stderr
    )
