"""GuessNumber: find a hidden number in [1, N] from higher/lower feedback.

About log2(N) turns are needed, so success rises with the turn budget: the simplest
task on which interaction scaling shows.
"""

from __future__ import annotations

from typing import Any

from agentgym.envs.guess_number.tasks import make_tasks

from agentgym.env import Outcome, Task
from agentgym.parsing import parse_integer
from agentgym.tool_env import ToolEnv, ToolError
from agentgym.tools import tool


class GuessNumberEnv(ToolEnv):
    """Find a hidden number in [1, N] from higher/lower feedback; ~log2(N) turns needed.

    Args:
        n: the number lies in [1, n].
        answer_is_final: if True a wrong `<answer>` ends the episode (a failure); by default
            an answer is a guess like `guess(n)` and gets feedback.
        guess_tool: offer the `guess` tool; without it the agent guesses with `<answer>` only
            (a shorter prompt, easier for small models).
        num_train, num_test: tasks per split.
        **kwargs: `TextEnv` arguments (max_turns, split, task_seed, render_mode).
    """

    default_max_turns = 8

    def __init__(
        self,
        n: int = 100,
        answer_is_final: bool = False,
        guess_tool: bool = True,
        num_train: int = 1000,
        num_test: int = 200,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if answer_is_final and not guess_tool:
            raise ValueError("answer_is_final=True needs guess_tool=True: otherwise the first guess is the last")
        if not guess_tool:
            self.restrict_tools(())
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.answer_is_final = answer_is_final
        self.counts = {"train": num_train, "test": num_test}
        self.target = 0

    def make_tasks(self, split: str) -> list[Task]:
        return make_tasks(split, self.n, self.counts[split], self.task_seed)

    def setup(self, task: Task) -> str:
        self.target = task.metadata["target"]
        how = "Guess with <answer>K</answer> or the guess tool."
        if not self.tools:
            how = "Reply with one guess per turn, like <answer>K</answer>."
        elif self.answer_is_final:
            how = "Probe with the guess tool; <answer>K</answer> is final."
        return f"{task.instruction} {how}"

    def _judge(self, k: int) -> Outcome:
        if k == self.target:
            return Outcome(f"Correct! The number is {k}.", reward=1.0, terminated=True, success=True)
        side = "higher" if self.target > k else "lower"
        return Outcome(f"{k} is wrong: my number is {side} than {k}.")

    @tool
    def guess(self, n: int) -> Outcome:
        """Guess the hidden number; the reply says whether it is higher or lower.

        Args:
            n: Your guess, a whole number in the allowed range.
        """
        if not 1 <= n <= self.n:
            raise ToolError(f"{n} is out of range: guess a number between 1 and {self.n}.")
        return self._judge(n)

    def on_answer(self, answer: str) -> Outcome:
        k = parse_integer(answer)
        if isinstance(k, str):
            return Outcome(
                f"Invalid answer ({k}): write a whole number, like <answer>{(self.n + 1) // 2}</answer>.", invalid=True
            )
        outcome = self._judge(k)
        if self.answer_is_final and not outcome.terminated:
            return Outcome(f"Wrong: the number was {self.target}.", terminated=True)
        return outcome
