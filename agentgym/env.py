"""`TextEnv`: a multi-turn text environment with tasks and a turn budget.

A `TextEnv` is a real `gymnasium.Env[str, str]`. A subclass says three things:

- `make_tasks(split)`: the tasks of a split, deterministic from `task_seed`;
- `setup(task)`: start an episode on a task, return the first observation;
- `transition(action)`: play one turn, return an `Outcome`.

The base class does the rest: choosing a task, the turn budget (`truncated=True` when
it is spent), the `info` dict, rendering, and making sure that a bad action is an
observation, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym

from agentgym.spaces import UnicodeText

__all__ = ["CHECK_AGAIN", "Outcome", "Task", "TextEnv", "budget_spent"]

CHECK_AGAIN = (
    "Before I accept your answer: check your work once more against everything you have seen, "
    "then give your final answer again."
)


#: Reset options of 0.1 that are wrappers now (`agentgym.wrappers`).
_MOVED_OPTIONS = {"check_again": "CheckAgain", "budget_tracker": "BudgetTracker"}


def budget_spent(budget: int) -> str:
    """What ends the observation of the turn that spends the turn budget."""
    return f"\nThe turn budget ({budget}) is spent; the episode ends."


@dataclass(frozen=True)
class Task:
    """One task of an environment.

    Attributes:
        id: unique within the environment (across splits), stable across runs.
        instruction: what the agent is asked to do, in plain text.
        split: "train", "test", or any other split name the env defines.
        min_turns: the fewest turns an optimal agent needs; budgets below it cannot win.
        difficulty: a label ("easy", "medium", "hard") or a number, for slicing results.
        metadata: anything else the env needs (hidden answers live here; agents never see it).
    """

    id: str
    instruction: str
    split: str = "test"
    min_turns: int = 1
    difficulty: str | float = "medium"
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(slots=True)
class Outcome:
    """What one turn did: the observation to show, and what it earned.

    Attributes:
        observation: text the agent sees next.
        reward: reward for this turn (summed into the episode's return).
        terminated: the episode ended by reaching an answer or a terminal state.
        success: whether the task is solved (meaningful when terminated).
        invalid: the action was malformed or not allowed (reported as `info["invalid_action"]`).
        info: extra entries merged into the step's `info`.
    """

    observation: str
    reward: float = 0.0
    terminated: bool = False
    success: bool = False
    invalid: bool = False
    info: dict[str, Any] | None = None


class TextEnv(gym.Env[str, str]):
    """Base class of agentgym environments: text actions, text observations, a turn budget.

    Args:
        max_turns: default turn budget of an episode; `reset(options={"max_turns": h})`
            overrides it for one episode. None: the env's `default_max_turns`, raised to
            the task's `min_turns` if that is higher.
        split: the split `reset()` draws a task from when no `task_id` is given.
        task_seed: seed of the task generator; the same seed gives the same tasks.
        render_mode: "ansi" (render returns the last exchange) or "human" (prints it).

    Example:
        >>> env = gymnasium.make("agentgym/GuessNumber-v0")
        >>> obs, info = env.reset(seed=0, options={"max_turns": 8})
        >>> obs, reward, terminated, truncated, info = env.step("<answer>50</answer>")
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 1}
    #: One line shown by `agentgym envs`; defaults to the first line of the class docstring.
    description: ClassVar[str] = ""
    #: Turn budget when neither the constructor nor `reset` gives one.
    default_max_turns: ClassVar[int] = 10
    #: Splits that `make_tasks` knows.
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(
        self,
        *,
        max_turns: int | None = None,
        split: str = "train",
        task_seed: int = 0,
        render_mode: str | None = None,
    ):
        if max_turns is not None and max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.observation_space = UnicodeText()
        self.action_space = UnicodeText()
        self.max_turns = max_turns
        self.split = split
        self.task_seed = task_seed
        self.render_mode = render_mode
        self._task_cache: dict[str, list[Task]] = {}
        self._task_index: dict[str, Task] | None = None
        self.current_task: Task | None = None
        self.turn = 0
        self.budget = 0
        self.tool_calls = 0
        self.done = True
        self._last: tuple[str, str] = ("", "")

    # ------------------------------------------------------------ what subclasses write

    def make_tasks(self, split: str) -> Sequence[Task]:
        """The tasks of `split`, deterministic from `self.task_seed`. Must be cheap-ish:
        `agentgym envs` calls it to count tasks, so do not start browsers or servers here."""
        raise NotImplementedError

    def setup(self, task: Task) -> str:
        """Start an episode on `task`; return the first observation (usually the instruction)."""
        raise NotImplementedError

    def transition(self, action: str) -> Outcome:
        """Play one turn. Malformed actions return `Outcome(..., invalid=True)`, never raise."""
        raise NotImplementedError

    def is_final_answer(self, action: str) -> bool:
        """Whether an action is a final answer: the hook `agentgym.wrappers.CheckAgain` asks."""
        return False

    @property
    def action_format(self) -> str:
        """How the agent should write actions; rendered into system prompts."""
        return ""

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        """JSON schemas of the tools the agent may call (none for a plain `TextEnv`)."""
        return []

    # ------------------------------------------------------------ tasks

    def tasks(self, split: str | None = None) -> list[Task]:
        """The tasks of a split (default: this env's `split`), in a fixed order."""
        split = split or self.split
        if split not in self._task_cache:
            if split not in self.splits:
                raise ValueError(f"unknown split {split!r}; this env has {list(self.splits)}")
            self._task_cache[split] = list(self.make_tasks(split))
        return self._task_cache[split]

    def get_task(self, task_id: str) -> Task:
        """The task with this id, from any split."""
        if self._task_index is None:
            self._task_index = {t.id: t for s in self.splits for t in self.tasks(s)}
        try:
            return self._task_index[task_id]
        except KeyError:
            sample = ", ".join(list(self._task_index)[:5])
            raise KeyError(f"unknown task_id {task_id!r}; ids look like: {sample}, ...") from None

    # ------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode.

        Options:
            task_id: the task (default: drawn from `split` with the seeded RNG).
            max_turns: this episode's turn budget.
            split: the split to draw from.

        TTI's check-again and BATS' budget tracker are wrappers of any env
        (`agentgym.wrappers`), no longer reset options.
        """
        super().reset(seed=seed)
        options = options or {}
        for key, wrapper in _MOVED_OPTIONS.items():
            if options.get(key):
                raise ValueError(
                    f"reset option {key!r} is a wrapper now: agentgym.wrappers.{wrapper}(env) "
                    f"(the rollout applies it from rollout.{key})"
                )
        if options.get("task_id") is not None:
            task = self.get_task(str(options["task_id"]))
        else:
            pool = self.tasks(options.get("split"))
            if not pool:
                raise ValueError(f"split {options.get('split') or self.split!r} has no tasks")
            task = pool[int(self.np_random.integers(len(pool)))]
        budget = options.get("max_turns") or self.max_turns or max(self.default_max_turns, task.min_turns)
        if not isinstance(budget, int) or budget < 1:
            raise ValueError(f"max_turns must be a positive integer, got {budget!r}")
        self.current_task = task
        self.budget = budget
        self.turn = 0
        self.tool_calls = 0
        self.done = False
        observation = self.setup(task)
        self._last = ("", observation)
        if self.render_mode == "human":
            self.render()
        return observation, self._info(False, False)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Play one turn. Every turn, valid or not, uses one unit of the budget."""
        if self.done:
            obs = "The episode is over: call reset() to start a new one."
            return obs, 0.0, True, False, self._info(True, False)
        if not isinstance(action, str):
            outcome = Outcome(f"Invalid action: an action must be a string, got {type(action).__name__}.", invalid=True)
        else:
            outcome = self.transition(action)
        self.turn += 1
        terminated = outcome.terminated
        truncated = not terminated and self.turn >= self.budget
        self.done = terminated or truncated
        observation = outcome.observation
        if truncated:
            observation += budget_spent(self.budget)
        self._last = (action if isinstance(action, str) else repr(action), observation)
        info = self._info(outcome.invalid, outcome.success and terminated)
        if outcome.info:
            info.update(outcome.info)
        if self.render_mode == "human":
            self.render()
        return observation, float(outcome.reward), terminated, truncated, info

    def _info(self, invalid: bool, success: bool) -> dict[str, Any]:
        task = self.current_task
        return {
            "task_id": task.id if task else None,
            "instruction": task.instruction if task else None,
            "turn": self.turn,
            "max_turns": self.budget,
            "turns_left": self.budget - self.turn,
            "tool_calls": self.tool_calls,
            "invalid_action": invalid,
            "success": success,
            "tools": self.tool_schemas,
        }

    def render(self) -> str | None:
        action, observation = self._last
        text = (f">>> {action}\n" if action else "") + observation
        if self.render_mode == "human":
            print(text)
            return None
        return text
