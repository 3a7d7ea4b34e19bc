"""Budgets of an episode: turns, tokens per turn, total tokens, and BATS.

A budget has two sides. The env enforces the turn budget (`max_turns`, a reset option;
`truncated=True` when spent); BATS' budget tracker and TTI's check-again are wrappers of
the env for the episode (`agentgym.wrappers`), named in the reset options as `wrappers`
(the env host applies them). The rollout enforces the token budgets: each
completion is cut at `max_new_tokens`, and an episode whose generated tokens pass
`max_total_tokens` ends `overlong` (a trainer masks it, like over-turn rollouts in
Mini-o3). The budget of summaries belongs to the `summarize` context strategy
(`rollout.summarize.max_summaries`).

Example:
    >>> budget = Budget(max_turns=8, max_new_tokens=64, max_total_tokens=300)
    >>> budget.reset_options("test-3")["max_turns"]
    8
    >>> budget.tokens_exceeded(301)
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentgym.wrappers import EPISODE_WRAPPERS

__all__ = ["Budget", "budget_revealing_options", "budget_visible", "episode_wrappers"]


def episode_wrappers(options: Any) -> list[str]:
    """The env wrappers (`agentgym.wrappers.EPISODE_WRAPPERS`) these rollout options turn on."""
    return [name for name in EPISODE_WRAPPERS if getattr(options, name, False)]


def budget_revealing_options(options: Any) -> list[str]:
    """The rollout options that are on and show the agent its turn budget: the prompt's
    `announce_budget`, and every wrapper whose `reveals_budget` is true."""
    shown = ["announce_budget"] if getattr(options, "announce_budget", False) else []  # the budget, in the prompt
    return shown + [name for name in episode_wrappers(options) if EPISODE_WRAPPERS[name].reveals_budget]


def budget_visible(options: Any) -> bool:
    """Whether the agent can see its turn budget under these rollout options (a
    `RolloutOptions` or a `RolloutConfig`). When it cannot, the first h turns of an
    episode with a larger budget are exactly an episode with budget h; when it can (a
    budget in the system prompt, BATS' turns-left line in every observation), its
    behaviour may depend on the budget, and each horizon must be run on its own
    (evaluation derives success@h from one long run only when nothing shows it)."""
    return bool(budget_revealing_options(options))


@dataclass(frozen=True)
class Budget:
    """The limits of one episode.

    Attributes:
        max_turns: env turns (the horizon); the env truncates the episode when spent.
        max_new_tokens: the most tokens of one completion (the per-turn token budget).
        max_total_tokens: the most tokens the policy may generate over the episode,
            summaries included (None: no limit); past it the episode ends `overlong`
            and the completion that crossed it is not sent to the env.
        budget_tracker: BATS: a `<budget>` line (turns and tool calls used and left) ends
            every observation (`agentgym.wrappers.BudgetTracker`).
        check_again: TTI's check-again: the agent is asked once to verify a final answer
            (`agentgym.wrappers.CheckAgain`).
    """

    max_turns: int
    max_new_tokens: int = 256
    max_total_tokens: int | None = None
    budget_tracker: bool = False
    check_again: bool = False

    def __post_init__(self) -> None:
        if self.max_turns < 1 or self.max_new_tokens < 1:
            raise ValueError(f"max_turns and max_new_tokens must be >= 1, got {self.max_turns}, {self.max_new_tokens}")
        if self.max_total_tokens is not None and self.max_total_tokens < 1:
            raise ValueError(f"max_total_tokens must be >= 1 or None, got {self.max_total_tokens}")

    def reset_options(self, task_id: str) -> dict[str, Any]:
        """The env's reset options that carry the env side of this budget (`wrappers`: the
        episode's env wrappers, which the env host applies and takes out)."""
        return {"task_id": task_id, "max_turns": self.max_turns, "wrappers": episode_wrappers(self)}

    def tokens_exceeded(self, generated_tokens: int) -> bool:
        """Whether `generated_tokens` so far is past the episode's total token budget."""
        return self.max_total_tokens is not None and generated_tokens > self.max_total_tokens
