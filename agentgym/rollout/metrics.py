"""Episode rates, and the throughput and health of a rollout batch.

`episode_rates` is the one definition of the rates of a batch of episodes (success,
failure, over-turn, overlong, aborted, invalid actions, cap hit) that every report uses:
rollout metrics, training logs and evaluation. `rollout_metrics` adds what
`RolloutPool.run` measured (episodes/s, tokens/s, env step latency, context lengths,
summaries, compression); `write_rollout` saves it as metrics.json beside trajectories.jsonl.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentgym import jsonio
from agentgym.trajectory import Trajectory, outcome_at, save_trajectories

__all__ = ["ABORTED_WARNING_SHARE", "RolloutStats", "episode_rates", "rollout_metrics", "warn_aborted", "write_rollout"]

#: A run whose aborted share is above this gets a warning (`warn_aborted`).
ABORTED_WARNING_SHARE = 0.05


def episode_rates(trajectories: Sequence[Trajectory], horizon: int | None = None) -> dict[str, float]:
    """The rates of a batch of episodes, with one stated denominator.

    An aborted episode (a lost worker, a timeout, an exception inside the env) says
    nothing about the policy, so every rate is over the *scored* (non-aborted) episodes:
    `success_rate`, `failure_rate`, `over_turn_rate` (= `cap_hit_rate`: ran out of turns),
    `overlong_rate`, and `invalid_action_rate` (invalid turns over their turns). Beside
    them, so that aborts can never flatter a result: `aborted` (a count), `aborted_rate`
    (of all episodes) and `success_rate_aborted_as_failure` (successes over all episodes).
    Rates of a batch with no scored episode are NaN.

    With `horizon`, each episode is first cut to that turn budget (`outcome_at`).
    """
    total = len(trajectories)
    scored = []
    for t in trajectories:
        reason, turns = outcome_at(t, horizon) if horizon is not None else (t.end_reason, t.turns)
        if reason != "aborted":
            scored.append((reason, turns, t))
    n = len(scored)
    reasons = Counter(reason for reason, _, _ in scored)
    turns = sum(k for _, k, _ in scored)
    invalid = sum(sum(t.turn_invalid[:k]) for _, k, t in scored)
    nan = float("nan")
    out: dict[str, float] = {
        f"{r}_rate": reasons[r] / n if n else nan for r in ("success", "failure", "over_turn", "overlong")
    }
    out["cap_hit_rate"] = out["over_turn_rate"]
    out["invalid_action_rate"] = invalid / turns if turns else nan
    out["aborted"] = total - n
    out["aborted_rate"] = (total - n) / total if total else nan
    out["success_rate_aborted_as_failure"] = reasons["success"] / total if total else nan
    return out


def warn_aborted(rates: dict[str, float], where: str) -> bool:
    """Print a warning (and return True) when more than `ABORTED_WARNING_SHARE` of the
    episodes `rates` describes were aborted: the rates are then over the survivors only."""
    share = rates["aborted_rate"]
    if not share > ABORTED_WARNING_SHARE:
        return False
    episodes = round(rates["aborted"] / share)
    print(
        f"agentgym: warning: {where}: {int(rates['aborted'])} of {episodes} episodes ({share:.0%}) were aborted "
        f"(env or infrastructure failures; see the trajectories' `error`). Success over the others: "
        f"{rates['success_rate']:.3f}; with aborted episodes counted as failures: "
        f"{rates['success_rate_aborted_as_failure']:.3f}",
        file=sys.stderr,
        flush=True,
    )
    return True


@dataclass
class RolloutStats:
    """Raw measurements of one or more runs (they accumulate)."""

    episodes: int = 0
    seconds: float = 0.0
    generate_seconds: float = 0.0
    env_seconds: float = 0.0  # time the driver waited on envs (in-process: ran them)
    generated_tokens: int = 0
    policy_calls: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    step_latencies: list[float] = field(default_factory=list)  # env time of each reset/step, in the worker
    context_lengths: list[int] = field(default_factory=list)  # prompt tokens of each generation
    compressions: list[tuple[int, int]] = field(default_factory=list)  # (before, after) tokens of each summary
    worker_restarts: int = 0

    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0


def _percentiles(values: Sequence[float], qs: Sequence[int], digits: int) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in qs}
    arr = np.asarray(values, dtype=float)
    return {f"p{q}": round(float(np.percentile(arr, q)), digits) for q in qs}


def rollout_metrics(trajectories: Sequence[Trajectory], stats: RolloutStats) -> dict[str, Any]:
    """One dict of a batch's metrics: `episode_rates` and what the pool measured."""
    n = len(trajectories)
    latency = _percentiles([s * 1000 for s in stats.step_latencies], (50, 95), 2)
    context = _percentiles(stats.context_lengths, (50, 90, 99), 1)
    before = sum(b for b, _ in stats.compressions)
    after = sum(a for _, a in stats.compressions)
    out: dict[str, Any] = {
        "episodes": n,
        "seconds": round(stats.seconds, 3),
        "episodes_per_s": round(stats.episodes_per_s, 3),
        "generated_tokens_per_s": round(stats.tokens_per_s, 1),
        "env_step_ms_p50": latency["p50"],
        "env_step_ms_p95": latency["p95"],
        **{f"context_tokens_{k}": v for k, v in context.items()},
        "summaries_per_episode": round(sum(t.summaries for t in trajectories) / n, 3) if n else 0.0,
        "compression_ratio": round(before / after, 3) if after else None,
        "worker_restarts": stats.worker_restarts,
        "mean_batch": round(float(np.mean(stats.batch_sizes)), 2) if stats.batch_sizes else 0.0,
        **episode_rates(trajectories),
    }
    return out


def write_rollout(output_dir: str | Path, trajectories: Sequence[Trajectory], metrics: dict[str, Any]) -> Path:
    """Write trajectories.jsonl and metrics.json into `output_dir`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_trajectories(list(trajectories), out / "trajectories.jsonl")
    (out / "metrics.json").write_text(jsonio.dumps(metrics, indent=2))
    return out
