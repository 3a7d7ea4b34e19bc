"""agentgym eval: success vs turns, pass@k, bootstrap bands, result files and plots."""

import json
import subprocess
import sys

import gymnasium
import pytest

import agentgym
from agentgym import Outcome, Task, TextEnv
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

    c = cfg(tmp_path, "env.id=agentgym/KVSum-v0", "env.kwargs={num_steps: 4}", "horizons=[2,4]")
    result = evaluate(c, ScriptedPolicy(smol_tokenizer, KVSumOracle()))
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


# ------------------------------------------------------------------ the agent's view of its budget


@pytest.mark.parametrize("option", ["announce_budget", "budget_tracker"])
def test_a_budget_the_agent_can_see_makes_each_horizon_run_on_its_own(smol_tokenizer, tmp_path, option):
    """success@h derived from one run at the largest h is only right when the agent cannot
    see its budget; BATS' turns-left line shows it in every observation."""
    result = evaluate(
        cfg(tmp_path, f"rollout.{option}=true", "horizons=[1,2,4]"), ScriptedPolicy(smol_tokenizer, bisect)
    )
    assert result.summary["sweep"] == "rerun"
    assert sorted({t.horizon for t in result.trajectories}) == [1, 2, 4]
    assert all(r["episodes"] == 24 for r in result.rows)  # each horizon its own 12 tasks x 2 samples


def test_prefix_sweep_is_refused_when_the_agent_sees_its_budget(tmp_path):
    from agentgym.config import ConfigError

    with pytest.raises(ConfigError, match=r"sweep=prefix.*rollout\.budget_tracker"):
        cfg(tmp_path, "sweep=prefix", "rollout.budget_tracker=true")


# ------------------------------------------------------------------ aborted episodes


class Fragile(TextEnv):
    """Say the task's number; an answer longer than 40 characters crashes the env (as a
    5,000-digit answer once crashed GuessNumber): an infrastructure failure, not the agent's."""

    def make_tasks(self, split):
        return [Task(f"{split}-{i}", f"Say {i}.", split) for i in range(8)]

    def setup(self, task):
        self.answer = task.id.split("-")[1]
        return task.instruction

    def transition(self, action):
        if len(action) > 40:
            raise RuntimeError("the answer overflowed the env")
        ok = action.strip() == self.answer
        return Outcome("Right." if ok else "Wrong.", reward=float(ok), terminated=True, success=ok)


def fragile_agent(msgs):
    """Right on even tasks; on odd ones, an answer that crashes the env."""
    n = int(msgs[1]["content"].split()[1].rstrip("."))
    return str(n) if n % 2 == 0 else "9" * 100


def test_success_with_aborted_episodes_counted_as_failures_is_reported_beside_and_warned(
    smol_tokenizer, tmp_path, capsys
):
    from agentgym.cli.eval import _print_table

    env_id = agentgym.register("Fragile-test-v0", Fragile)
    c = cfg(tmp_path, f"env.id={env_id}", "env.num_tasks=8", "samples_per_task=1", "horizons=[1,2]")
    result = evaluate(c, ScriptedPolicy(smol_tokenizer, fragile_agent))
    row = result.rows[0]
    assert row["aborted"] == 4 and row["aborted_rate"] == 0.5
    assert row["success"] == 1.0  # over the 4 episodes that were not aborted...
    assert row["success_aborted_as_failure"] == 0.5  # ...and with the aborted ones as failures
    assert row["success_aborted_as_failure_ci_low"] <= 0.5 <= row["success_aborted_as_failure_ci_high"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["aborted"] == 4 and saved["horizons"][0]["success_aborted_as_failure"] == 0.5
    assert "4 of 8 episodes (50%) were aborted" in capsys.readouterr().err
    _print_table(result.summary)
    table = capsys.readouterr().out
    assert "abort=fail" in table and "aborted episodes (env or infrastructure failures) counted as failures" in table


def test_the_plot_legend_says_how_many_episodes_were_aborted_and_draws_success_with_them(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from agentgym.eval import plots

    row = {"horizon": 1, "success": 1.0, "success_ci_low": 1.0, "success_ci_high": 1.0, "cap_hit_rate": 0.0}
    row.update(invalid_action_rate=0.0, aborted=4, success_aborted_as_failure=0.5)
    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    plots.plot_curves([{"label": "m", "aborted": 4, "horizons": [row]}], tmp_path / "p.png")
    labels = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    plt.close(figures[0])
    assert labels == ["m success@h (4 aborted episodes left out)", "m success@h, aborted = failure"]


def test_one_rate_function_serves_rollout_metrics_training_logs_and_evaluation():
    """Every report divides by the non-aborted episodes and gives the aborted count beside."""
    from agentgym.trainers.loop import batch_metrics

    from agentgym.eval.metrics import horizon_metrics
    from agentgym.rollout import RolloutStats, rollout_metrics

    def ep(reason, turns, reward=0.0, invalid=()):
        flags = [int(t in invalid) for t in range(turns)]
        return Trajectory(
            "e",
            f"t{len(reason)}",
            end_reason=reason,
            turns=turns,
            reward=reward,
            success=reason == "success",
            turn_invalid=flags,
            turn_rewards=[0.0] * turns,
        )

    batch = [
        ep("success", 2, 1.0),
        ep("failure", 3, invalid=(0,)),
        ep("over_turn", 4),
        ep("aborted", 1),
        ep("aborted", 0),
    ]
    training = batch_metrics(batch)
    rollout = rollout_metrics(batch, RolloutStats())
    evaluation = horizon_metrics(batch, 4, derive=False, resamples=10)
    assert training["reward_mean"] == pytest.approx(1 / 3)  # aborted rollouts are not zeros
    for rates in (training, rollout):
        assert rates["success_rate"] == pytest.approx(1 / 3) and rates["over_turn_rate"] == pytest.approx(1 / 3)
        assert rates["cap_hit_rate"] == rates["over_turn_rate"] and rates["aborted"] == 2
        assert rates["aborted_rate"] == pytest.approx(2 / 5)
        assert rates["success_rate_aborted_as_failure"] == pytest.approx(1 / 5)
        assert rates["invalid_action_rate"] == pytest.approx(1 / 9)
    assert evaluation["success"] == pytest.approx(1 / 3) and evaluation["cap_hit_rate"] == pytest.approx(1 / 3)
    assert evaluation["failure_rate"] == pytest.approx(1 / 3) and evaluation["aborted"] == 2
    assert evaluation["success_aborted_as_failure"] == pytest.approx(1 / 5)


def _strict(text):
    def refuse(constant):
        raise ValueError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_an_evaluation_whose_episodes_all_aborted_keeps_its_trajectories_and_writes_strict_json(
    smol_tokenizer, tmp_path
):
    env_id = agentgym.register("Fragile-test-v0", Fragile)
    c = cfg(tmp_path, f"env.id={env_id}", "env.num_tasks=4", "samples_per_task=1", "horizons=[1,2]")
    result = evaluate(c, ScriptedPolicy(smol_tokenizer, lambda msgs: "9" * 100))
    assert result.rows[0]["aborted"] == 4
    assert len((tmp_path / "trajectories.jsonl").read_text().splitlines()) == 4  # what explains the failure
    summary = _strict((tmp_path / "results.json").read_text())
    assert summary["horizons"][0]["success"] is None and summary["horizons"][0]["mean_turns_success"] is None
    _strict((tmp_path / "metrics.json").read_text())


def test_a_plot_that_cannot_be_drawn_is_a_warning_after_the_data_is_written(
    smol_tokenizer, tmp_path, monkeypatch, capsys
):
    module = sys.modules["agentgym.eval.evaluate"]  # the module (the package exports the function by its name)

    def broken(*args, **kwargs):
        raise ValueError("Data cannot be log-scaled")

    monkeypatch.setattr(module, "plot_curves", broken)
    evaluate(cfg(tmp_path, "env.num_tasks=2", "horizons=[1,2]"), ScriptedPolicy(smol_tokenizer, bisect))
    err = capsys.readouterr().err
    assert "could not draw" in err and "Data cannot be log-scaled" in err
    assert (tmp_path / "results.json").exists() and (tmp_path / "trajectories.jsonl").exists()


# ------------------------------------------------------------------ fit=true: the success curve fitted


def test_an_evaluation_with_fit_writes_the_fitted_curve_prints_it_and_draws_it(smol_tokenizer, tmp_path, capsys):
    from agentgym.cli.eval import _print_table

    result = evaluate(cfg(tmp_path, "fit=true", "bootstrap=200"), ScriptedPolicy(smol_tokenizer, bisect))
    fit = _strict((tmp_path / "results.json").read_text())["fit"]
    assert set(fit) >= {"asymptote", "slope", "midpoint", "h50", "horizons", "grid", "failed_resamples"}
    assert fit["horizons"] == [1, 2, 3, 4, 8] and fit["tasks"] == 12 and fit["failed_resamples"] == 0
    assert fit["grid"]["h"][-1] == pytest.approx(32)  # extrapolated to 4x the largest horizon
    assert fit["asymptote"]["value"] == pytest.approx(result.success_at(8), abs=0.05)  # bisection solves them all
    assert (tmp_path / "success_vs_turns.png").stat().st_size > 10_000
    _print_table(result.summary)
    assert "fit A / (1 + exp(-k (ln h - m))), 95% intervals: A " in capsys.readouterr().out


def test_fit_with_fewer_than_three_horizons_is_a_config_error_naming_fit(tmp_path):
    from agentgym.config import ConfigError

    with pytest.raises(ConfigError, match=r"fit=true .* needs at least 3 horizons, got horizons=\[1, 2\]"):
        cfg(tmp_path, "fit=true", "horizons=[1,2]")


def test_the_plot_draws_the_fit_with_its_band_and_marks_h50(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import numpy as np

    from agentgym.eval import plots
    from agentgym.eval.fits import fit_success_curve

    rows = [
        {"horizon": h, "success": s, "success_ci_low": s, "success_ci_high": s, "cap_hit_rate": 0.0}
        for h, s in ((1, 0.0), (2, 0.5), (4, 1.0))
    ]
    for r in rows:
        r["invalid_action_rate"] = 0.0
    per_task = np.array([[0, 0, 1], [0, 1, 1], [0, 1, 1], [0, 0, 1]], dtype=float)
    fit = fit_success_curve([1, 2, 4], per_task, resamples=50).to_dict()
    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    plots.plot_curves([{"label": "m", "horizons": rows, "fit": fit}], tmp_path / "p.png")
    ax = figures[0].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    texts = [t.get_text() for t in ax.texts]
    plt.close(figures[0])
    assert any(label.startswith("m fit (asymptote 1.00, h50 2.0") for label in labels), labels
    assert "h50=2.0" in texts and (tmp_path / "p.png").exists()
