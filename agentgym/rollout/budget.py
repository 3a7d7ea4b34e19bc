"""Budgets of an episode: turns, tokens per turn, total tokens, and BATS.

A budget has two sides. The env enforces the turn budget (`max_turns`, `truncated=True`
when spent) and, when asked, appends the BATS budget tracker's `<budget>` line to its
observations, so both are reset options. The rollout enforces the token budgets: each
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

__all__ = ["BUDGET_REVEALING_OPTIONS", "Budget", "budget_visible"]

#: Rollout options that show the agent its turn budget. An option that reveals it in any
#: way (in the prompt, in observations) belongs here: evaluation derives success@h from
#: one long run only when none of them is on (see `budget_visible`).
BUDGET_REVEALING_OPTIONS: tuple[str, ...] = ("announce_budget", "budget_tracker")


def budget_visible(options: Any) -> bool:
    """Whether the agent can see its turn budget under these rollout options (a
    `RolloutOptions` or a `RolloutConfig`). When it cannot, the first h turns of an
    episode with a larger budget are exactly an episode with budget h; when it can (a
    budget in the system prompt, BATS' turns-left line in every observation), its
    behaviour may depend on the budget, and each horizon must be run on its own."""
    return any(bool(getattr(options, name)) for name in BUDGET_REVEALING_OPTIONS)


@dataclass(frozen=True)
class Budget:
    """The limits of one episode.

    Attributes:
        max_turns: env turns (the horizon); the env truncates the episode when spent.
        max_new_tokens: the most tokens of one completion (the per-turn token budget).
        max_total_tokens: the most tokens the policy may generate over the episode,
            summaries included (None: no limit); past it the episode ends `overlong`
            and the completion that crossed it is not sent to the env.
        budget_tracker: BATS: the env appends a `<budget>` line (turns and tool calls used
            and left) to every observation.
        check_again: TTI's check-again: the env asks once to verify a final answer.
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
        """The env's reset options that carry the env side of this budget."""
        return {
            "task_id": task_id,
            "max_turns": self.max_turns,
            "check_again": self.check_again,
            "budget_tracker": self.budget_tracker,
        }

    def tokens_exceeded(self, generated_tokens: int) -> bool:
        """Whether `generated_tokens` so far is past the episode's total token budget."""
        return self.max_total_tokens is not None and generated_tokens > self.max_total_tokens
