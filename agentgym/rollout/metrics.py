"""Throughput and health of a rollout batch: what `RolloutPool.run` measured.

`rollout_metrics` turns a batch's trajectories and its `RolloutStats` into one flat dict
(episodes/s, tokens/s, env step latency, context lengths, summaries, compression, and
the aborted / over_turn / overlong rates); `write_rollout` saves it as metrics.json
beside trajectories.jsonl.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.trajectory import END_REASONS, Trajectory, save_trajectories

__all__ = ["RolloutStats", "rollout_metrics", "write_rollout"]


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
    """One dict of a batch's metrics. Aborted episodes are counted apart, never as failures."""
    n = len(trajectories)
    reasons = Counter(t.end_reason for t in trajectories)
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
    }
    for reason in END_REASONS:
        out[f"{reason}_rate"] = reasons[reason] / n if n else 0.0
    out["aborted"] = reasons["aborted"]
    return out


def write_rollout(output_dir: str | Path, trajectories: Sequence[Trajectory], metrics: dict[str, Any]) -> Path:
    """Write trajectories.jsonl and metrics.json into `output_dir`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_trajectories(list(trajectories), out / "trajectories.jsonl")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return out
