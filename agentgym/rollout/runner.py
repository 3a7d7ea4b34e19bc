"""`run_episodes`: one call that runs a batch of episodes through a `RolloutPool`.

For repeated batches (a trainer), keep a `RolloutPool` open instead: its workers and
envs are reused from one batch to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import gymnasium as gym

from agentgym.policy.base import Policy, SamplingParams
from agentgym.rollout.episode import EpisodeSpec, RolloutOptions
from agentgym.rollout.metrics import RolloutStats
from agentgym.rollout.pool import RolloutPool
from agentgym.trajectory import Trajectory

__all__ = ["RolloutStats", "run_episodes"]


def run_episodes(
    policy: Policy,
    make_env: Callable[[], gym.Env],
    env_id: str,
    specs: Sequence[EpisodeSpec],
    sampling: SamplingParams,
    options: RolloutOptions | None = None,
    *,
    max_concurrent: int = 64,
    progress: bool | str = False,
    stats: RolloutStats | None = None,
    backend: Literal["local", "ray"] = "local",
    num_workers: int | None = None,
    address: str | None = None,
    step_timeout_s: float | None = None,
) -> list[Trajectory]:
    """Run every episode in `specs`, up to `max_concurrent` at a time; trajectories in spec order.

    Args:
        policy: generates for all waiting episodes in one batch.
        make_env: builds one env; each env is reused for several episodes (for Ray it is
            pickled to the workers: use `agentgym.rollout.env_maker`).
        env_id: recorded in the trajectories.
        specs: the episodes (task, horizon, sample index, reset seed).
        sampling: per-turn sampling parameters (`max_new_tokens` is the per-turn token budget).
        options: context window and strategy, budgets, test-time options.
        max_concurrent: the most episodes in flight (and envs alive).
        progress: show a progress bar (a string sets its label).
        stats: filled with measurements if given (see `rollout_metrics`).
        backend, num_workers, address, step_timeout_s: see `RolloutPool`.
    """
    with RolloutPool(
        make_env,
        env_id,
        backend=backend,
        num_workers=num_workers,
        address=address,
        step_timeout_s=step_timeout_s,
        max_concurrent=max_concurrent,
    ) as pool:
        return pool.run(policy, specs, sampling, options, progress=progress, stats=stats)
