"""Running many episodes at once against one policy, in this process.

At every step the runner gathers every episode that waits for the policy, generates for
all of them in one batch, then steps their envs. Episodes start as others finish, so the
batch stays full. (The Ray pool of issue 7 runs envs in worker processes with the same
`Episode` logic.)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
from tqdm import tqdm

from agentgym.policy.base import Policy, SamplingParams
from agentgym.rollout.episode import Episode, EpisodeSpec, RolloutOptions
from agentgym.trajectory import Trajectory

__all__ = ["RolloutStats", "run_episodes"]


@dataclass
class RolloutStats:
    """Throughput of one `run_episodes` call."""

    episodes: int = 0
    seconds: float = 0.0
    generate_seconds: float = 0.0
    env_seconds: float = 0.0
    generated_tokens: int = 0
    policy_calls: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0


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
) -> list[Trajectory]:
    """Run every episode in `specs`, up to `max_concurrent` at a time; trajectories in spec order.

    Args:
        policy: generates for all waiting episodes in one batch.
        make_env: builds one env; the runner reuses each env for several episodes.
        env_id: recorded in the trajectories.
        specs: the episodes (task, horizon, sample index, reset seed).
        sampling: per-turn sampling parameters (`max_new_tokens` is the per-turn token budget).
        options: context window, budget announcements, test-time options.
        max_concurrent: the most episodes in flight (and envs alive).
        progress: show a progress bar (a string sets its label).
        stats: filled with throughput figures if given.
    """
    options = options or RolloutOptions(max_new_tokens=sampling.max_new_tokens)
    stats = stats if stats is not None else RolloutStats()
    queue = deque(enumerate(specs))
    results: list[Trajectory | None] = [None] * len(specs)
    free_envs: list[gym.Env] = []
    envs: list[gym.Env] = []
    active: list[tuple[int, Episode]] = []
    bar = tqdm(
        total=len(specs),
        desc=progress if isinstance(progress, str) else "episodes",
        disable=not progress,
        unit="ep",
        dynamic_ncols=True,
    )
    start = time.perf_counter()
    try:
        while queue or active:
            while queue and len(active) < max_concurrent:
                index, spec = queue.popleft()
                if not free_envs:
                    envs.append(make_env())
                    free_envs.append(envs[-1])
                episode = Episode(free_envs.pop(), env_id, spec, policy.tokenizer, options)
                t0 = time.perf_counter()
                episode.start()
                stats.env_seconds += time.perf_counter() - t0
                active.append((index, episode))
            waiting = [(i, ep) for i, ep in active if not ep.done]
            if waiting:
                t0 = time.perf_counter()
                gens = policy.generate(
                    [ep.context_ids for _, ep in waiting], sampling, [ep.messages for _, ep in waiting]
                )
                stats.generate_seconds += time.perf_counter() - t0
                stats.policy_calls += 1
                stats.batch_sizes.append(len(waiting))
                t0 = time.perf_counter()
                for (_, ep), gen in zip(waiting, gens, strict=True):
                    stats.generated_tokens += len(gen.token_ids)
                    ep.advance(gen)
                stats.env_seconds += time.perf_counter() - t0
            still = []
            for index, ep in active:
                if ep.done:
                    results[index] = ep.traj
                    free_envs.append(ep.env)
                    bar.update(1)
                else:
                    still.append((index, ep))
            active = still
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{stats.generated_tokens / max(elapsed, 1e-9):.0f} tok/s", refresh=False)
    finally:
        bar.close()
        for env in envs:
            env.close()
    stats.episodes += len(specs)
    stats.seconds += time.perf_counter() - start
    return results  # type: ignore[return-value]
