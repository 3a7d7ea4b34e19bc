"""Multi-turn rollouts: episodes in flight, batched generation, token-exact trajectories."""

from agentgym.rollout.episode import Episode, EpisodeSpec, RolloutOptions
from agentgym.rollout.runner import RolloutStats, run_episodes

__all__ = ["Episode", "EpisodeSpec", "RolloutOptions", "RolloutStats", "run_episodes"]
