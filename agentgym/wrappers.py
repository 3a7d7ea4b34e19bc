"""Test-time components that wrap any text env (`gymnasium.Env[str, str]`).

- `CheckAgain` (TTI, "Thinking vs. Doing"): the first final answer of an episode is not
  passed on; the agent is asked to verify it and answer again, which uses a turn.
- `BudgetTracker` (BATS): every observation after a step ends with a `<budget>` line of
  the turns (and tool calls) used and left.

They read only what gymnasium gives them (actions, observations, `info`) and a small
documented protocol, so they work on envs that are not `TextEnv`s:

- the turn budget: the reset option `max_turns`, else `info["max_turns"]` of `reset`
  (a `TextEnv` reports it); with neither, the episode has no budget the wrapper knows of;
- `is_final_answer(action) -> bool` on the env (`env.unwrapped`), the one hook
  `CheckAgain` asks, or its `is_final=` argument;
- `info["tool_calls"]` and `info["tool_counts"]` (per tool), shown by `BudgetTracker`
  when the env reports them.

Whether a component shows the agent its turn budget is its `reveals_budget`: evaluation
derives success@h from one long run only when nothing does (`agentgym.rollout.budget`).
The rollout applies them per episode, from the rollout options (`rollout.check_again`,
`rollout.budget_tracker`; `episode_env`), so one pool of envs serves episodes with
different options.

Example:
    >>> import agentgym
    >>> env = BudgetTracker(CheckAgain(agentgym.make("GuessNumber-16-v0")))
    >>> obs, info = env.reset(seed=0, options={"max_turns": 4})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gymnasium as gym

from agentgym.env import CHECK_AGAIN, budget_spent

__all__ = ["EPISODE_WRAPPERS", "BudgetTracker", "CheckAgain", "TurnWrapper", "episode_env"]


class TurnWrapper(gym.Wrapper):
    """A wrapper that counts the turns of an episode and knows its budget (if any).

    `turn`: the steps since `reset` (every step uses a turn, as in a `TextEnv`);
    `budget`: the episode's turn budget, or None."""

    #: Whether the agent sees its turn budget through this component.
    reveals_budget: ClassVar[bool] = False

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.turn = 0
        self.budget: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        self.turn = 0
        budget = info.get("max_turns") or (options or {}).get("max_turns")
        self.budget = budget if isinstance(budget, int) and not isinstance(budget, bool) else None
        return observation, info

    def count_turn(self, info: dict[str, Any]) -> dict[str, Any]:
        """Count a step's turn; `info` with its turn counters made this wrapper's."""
        self.turn += 1
        if "turn" in info:
            info = {**info, "turn": self.turn}
            if self.budget is not None and "turns_left" in info:
                info["turns_left"] = self.budget - self.turn
        return info

    @property
    def budget_spent(self) -> bool:
        return self.budget is not None and self.turn >= self.budget


class CheckAgain(TurnWrapper):
    """TTI's check-again: the episode's first final answer is answered with `message`
    instead of being passed to the env; the agent's next final answer counts. The
    intercepted turn uses one of the budget's turns (the env did not see it, so this
    wrapper ends the episode when the budget is spent).

    Args:
        env: any text env.
        is_final: whether an action is a final answer; default: the env's
            `is_final_answer(action)` hook.
        message: what the agent is told instead.
    """

    def __init__(self, env: gym.Env, is_final: Callable[[str], bool] | None = None, message: str = CHECK_AGAIN):
        super().__init__(env)
        if is_final is None:
            is_final = getattr(env.unwrapped, "is_final_answer", None)
        if not callable(is_final):
            raise TypeError(
                f"CheckAgain({type(env.unwrapped).__name__}): the env has no is_final_answer(action) -> bool, so "
                "which answers to question is unknown: give it one, or pass is_final="
            )
        self.is_final = is_final
        self.message = message
        self.checked = False
        self.last_info: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = super().reset(seed=seed, options=options)
        self.checked = False
        self.last_info = info
        return observation, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if not self.checked and isinstance(action, str) and self.is_final(action):
            self.checked = True
            info = dict(self.last_info)  # the env's counters, as after its latest turn
            info.update({k: False for k in ("invalid_action", "success") if k in info})
            info = self.count_turn(info)
            observation = self.message
            if self.budget_spent:
                observation += budget_spent(self.budget)
            self.last_info = info
            return observation, 0.0, False, self.budget_spent, info
        observation, reward, terminated, truncated, info = self.env.step(action)
        info = self.count_turn(info)
        if not (terminated or truncated) and self.budget_spent:
            # The env saw one turn fewer than the agent used: the budget ends here.
            truncated = True
            observation += budget_spent(self.budget)
        self.last_info = info
        return observation, reward, terminated, truncated, info


class BudgetTracker(TurnWrapper):
    """BATS' budget tracker: after every step that does not end the episode, the
    observation ends with `<budget>turns used: U, turns left: L; tool calls used: C
    (per tool)</budget>` (the parts the env and the budget report)."""

    reveals_budget = True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        info = self.count_turn(info)
        if not (terminated or truncated):
            observation += "\n" + self.line(info)
        return observation, reward, terminated, truncated, info

    def line(self, info: dict[str, Any]) -> str:
        """The `<budget>` line after the step that reported `info`."""
        parts = f"turns used: {self.turn}"
        if self.budget is not None:
            parts += f", turns left: {self.budget - self.turn}"
        if "tool_calls" in info:
            parts += f"; tool calls used: {info['tool_calls']}"
            counts = info.get("tool_counts")
            if isinstance(counts, dict):
                parts += " (" + (", ".join(f"{k}={v}" for k, v in counts.items()) or "none") + ")"
        return f"<budget>{parts}</budget>"


#: The components the rollout can apply, by the name of their rollout option, innermost
#: first (the tracker counts the turn check-again used).
EPISODE_WRAPPERS: dict[str, type[TurnWrapper]] = {"check_again": CheckAgain, "budget_tracker": BudgetTracker}


def episode_env(env: gym.Env, names: Sequence[str]) -> gym.Env:
    """`env` wrapped in the components `names` (keys of `EPISODE_WRAPPERS`) for one episode."""
    unknown = [n for n in names if n not in EPISODE_WRAPPERS]
    if unknown:
        raise ValueError(f"unknown episode wrappers {unknown}: known are {list(EPISODE_WRAPPERS)}")
    for name, wrapper in EPISODE_WRAPPERS.items():
        if name in names:
            env = wrapper(env)
    return env
