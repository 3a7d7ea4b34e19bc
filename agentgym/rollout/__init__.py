"""Multi-turn rollouts: episodes in flight, env workers (local or Ray), batched generation,
token-exact trajectories, and the metrics of each batch."""

from agentgym.rollout.episode import Episode, EpisodeSpec, RolloutOptions, episode_seed, rollout_settings
from agentgym.rollout.metrics import RolloutStats, episode_rates, rollout_metrics, warn_aborted, write_rollout
from agentgym.rollout.pool import RolloutPool
from agentgym.rollout.runner import run_episodes
from agentgym.rollout.workers import env_maker

__all__ = [
    "Episode",
    "EpisodeSpec",
    "RolloutOptions",
    "RolloutPool",
    "RolloutStats",
    "env_maker",
    "episode_rates",
    "episode_seed",
    "rollout_metrics",
    "rollout_settings",
    "run_episodes",
    "warn_aborted",
    "write_rollout",
]
