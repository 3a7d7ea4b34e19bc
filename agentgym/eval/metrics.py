"""Metrics of success vs interaction turns: success@h with bootstrap bands, pass@k, pass^k.

`outcome_at` (agentgym.trajectory) derives what an episode would have been under a
smaller turn budget from its full record: with the budget not shown to the agent, the
first h turns of an episode with budget H > h are exactly an episode with budget h, so
one run at the largest horizon gives the whole curve.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from math import comb, log
from typing import Any

import numpy as np

from agentgym.rollout.metrics import episode_rates
from agentgym.trajectory import Trajectory, outcome_at

__all__ = [
    "bootstrap_ci",
    "horizon_metrics",
    "outcome_at",
    "pass_at_k",
    "pass_hat_k",
    "per_task_success",
    "task_accuracy_by_step",
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): P(at least one of k of the n samples succeeds)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k (tau-bench): P(all of k samples succeed), unbiased from n samples."""
    if k > n:
        raise ValueError(f"pass^{k} needs at least {k} samples, got {n}")
    return comb(c, k) / comb(n, k)


def bootstrap_ci(per_task: Sequence[Sequence[float]], resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean, resampling tasks (each with all its samples) with replacement."""
    groups = [np.asarray(g, dtype=float) for g in per_task if len(g)]
    if not groups:
        return (float("nan"), float("nan"))
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(resamples, len(groups)))
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _at(values: list[Any], turns: int, default: Any = 0) -> Any:
    return values[turns - 1] if 0 < turns <= len(values) else default


def per_task_success(trajectories: Sequence[Trajectory], h: int, derive: bool) -> dict[str, list[float]]:
    """Each task's successes (1.0 or 0.0) at horizon h, one per episode; aborted episodes
    are left out (an infrastructure failure says nothing about the policy). With
    `derive`, episodes ran at a larger budget and are cut to h (`outcome_at`).

    Example:
        >>> episodes = [Trajectory("e", "t1", end_reason="success", turns=3), Trajectory("e", "t2", end_reason="aborted")]
        >>> per_task_success(episodes, 2, derive=True), per_task_success(episodes, 4, derive=True)
        ({'t1': [0.0]}, {'t1': [1.0]})
    """
    per_task: dict[str, list[float]] = defaultdict(list)
    for t in trajectories:
        reason, _ = outcome_at(t, h) if derive else (t.end_reason, t.turns)
        if reason != "aborted":
            per_task[t.task_id].append(float(reason == "success"))
    return dict(per_task)


def horizon_metrics(
    trajectories: Sequence[Trajectory], h: int, *, derive: bool, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """All metrics at horizon h. With `derive`, episodes ran at a larger budget and are cut to h.

    The rates are `episode_rates` (over the non-aborted episodes); `success` is their
    success rate, and `success_aborted_as_failure` counts aborted episodes as failures,
    each with a 95% bootstrap interval over tasks.
    """
    per_task = per_task_success(trajectories, h, derive)
    per_task_all: dict[str, list[float]] = defaultdict(list)  # aborted episodes as failures
    turns_used, success_turns, tokens, tool_calls, rewards = [], [], [], [], []
    for t in trajectories:
        reason, turns = outcome_at(t, h) if derive else (t.end_reason, t.turns)
        ok = reason == "success"
        per_task_all[t.task_id].append(float(ok))
        if reason == "aborted":
            continue  # as in per_task_success
        turns_used.append(turns)
        if ok:
            success_turns.append(turns)
        tokens.append(sum(t.turn_tokens[:turns]))
        tool_calls.append(_at(t.turn_tool_calls, turns))
        rewards.append(sum(t.turn_rewards[:turns]))
    rates = episode_rates(trajectories, h if derive else None)
    lo, hi = bootstrap_ci(list(per_task.values()), resamples, seed)
    lo_all, hi_all = bootstrap_ci(list(per_task_all.values()), resamples, seed)
    k_max = min((len(v) for v in per_task.values()), default=0)
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= k_max]
    row: dict[str, Any] = {
        "horizon": h,
        "episodes": len(trajectories),
        "tasks": len(per_task),
        "success": rates.pop("success_rate"),
        "success_ci_low": lo,
        "success_ci_high": hi,
        "success_aborted_as_failure": rates.pop("success_rate_aborted_as_failure"),
        "success_aborted_as_failure_ci_low": lo_all,
        "success_aborted_as_failure_ci_high": hi_all,
        "mean_reward": float(np.mean(rewards)) if rewards else float("nan"),
        "mean_turns": float(np.mean(turns_used)) if turns_used else float("nan"),
        "mean_turns_success": float(np.mean(success_turns)) if success_turns else float("nan"),
        **rates,
        "tokens_per_episode": float(np.mean(tokens)) if tokens else float("nan"),
        "tool_calls_per_episode": float(np.mean(tool_calls)) if tool_calls else float("nan"),
    }
    for k in ks:
        row[f"pass@{k}"] = float(np.mean([pass_at_k(len(v), int(sum(v)), k) for v in per_task.values()]))
        row[f"pass^{k}"] = float(np.mean([pass_hat_k(len(v), int(sum(v)), k) for v in per_task.values()]))
    return row


def task_accuracy_by_step(trajectories: Sequence[Trajectory]) -> dict[str, Any] | None:
    """For envs that report `first_error_step` (KVSum): the fraction of episodes still fully
    correct after each step, and the horizons H_0.5 and H_0.8 where it drops below 0.5 / 0.8."""
    rows = [t for t in trajectories if "first_error_step" in t.info and t.end_reason != "aborted"]
    if not rows:
        return None
    steps = max((int(t.info.get("step") or 0) for t in rows), default=0)
    if steps == 0:
        return None
    curve = []
    for s in range(1, steps + 1):
        alive = [t for t in rows if int(t.info.get("step") or 0) >= s]
        ok = [t for t in alive if t.info["first_error_step"] is None or t.info["first_error_step"] > s]
        curve.append(len(ok) / len(rows))
    out: dict[str, Any] = {"task_accuracy": curve}
    for s in (0.5, 0.8):
        out[f"H_{s}"] = next((i + 1 for i, a in enumerate(curve) if a < s), None)
    step_acc = [t.info.get("step_accuracy", 0.0) for t in rows]
    p = float(np.mean(step_acc))
    out["step_accuracy"] = p
    out["predicted_H_0.5"] = log(0.5) / log(p) if 0 < p < 1 else None
    return out
