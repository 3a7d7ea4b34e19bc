"""KVSum: keep a running sum of dictionary values over many turns.

The long-horizon execution task of "The Illusion of Diminishing Returns" (Sinha et al.,
2025): retrieval and addition are trivial, so any failure is a failure to *execute* over
a long horizon. With per-step accuracy p, the horizon at which half the tasks still
succeed is ln 0.5 / ln p.
"""

from __future__ import annotations

from typing import Any, Literal

from agentgym.envs.kvsum.tasks import Episode, build_episode, make_tasks

from agentgym.env import Outcome, Task
from agentgym.parsing import parse_integer
from agentgym.tool_env import ToolEnv, ToolError
from agentgym.tools import tool


class KVSumEnv(ToolEnv):
    """Keep a running sum of the values of nonsense-word keys, K keys a turn, over many steps.

    Args:
        num_steps: steps per episode (the horizon of the task).
        keys_per_turn: K, the keys shown at each step.
        dict_size: words in the dictionary.
        value_range: values are integers in [-value_range, value_range].
        dictionary: "prompt" shows the dictionary in the first observation (one turn a
            step); "tool" hides it behind `lookup(key)` (a lookup turn for each step that shows an unseen key, then the answer).
        feedback: tell the agent after each step whether its sum was right.
        reward: "step" gives 1/num_steps for each correct sum; "task" gives 1 at the end if
            every sum was right.
        num_train, num_test: tasks per split.
        **kwargs: `TextEnv` arguments (max_turns, split, task_seed, render_mode).
    """

    default_max_turns = 10

    def __init__(
        self,
        num_steps: int = 10,
        keys_per_turn: int = 1,
        dict_size: int = 100,
        value_range: int = 99,
        dictionary: Literal["prompt", "tool"] = "prompt",
        feedback: bool = False,
        reward: Literal["step", "task"] = "step",
        num_train: int = 1000,
        num_test: int = 200,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if dictionary not in ("prompt", "tool"):
            raise ValueError(f'dictionary must be "prompt" or "tool", got {dictionary!r}')
        if reward not in ("step", "task"):
            raise ValueError(f'reward must be "step" or "task", got {reward!r}')
        if min(num_steps, keys_per_turn, dict_size) < 1 or value_range < 0:
            raise ValueError("num_steps, keys_per_turn and dict_size must be >= 1 and value_range >= 0")
        self.num_steps = num_steps
        self.keys_per_turn = keys_per_turn
        self.dict_size = dict_size
        self.value_range = value_range
        self.dictionary = dictionary
        self.feedback = feedback
        self.reward_mode = reward
        self.counts = {"train": num_train, "test": num_test}
        self.episode: Episode | None = None
        if dictionary == "prompt":
            self.restrict_tools(())

    def make_tasks(self, split: str) -> list[Task]:
        return make_tasks(
            split,
            self.counts[split],
            self.task_seed,
            self.num_steps,
            self.keys_per_turn,
            self.dict_size,
            self.value_range,
            lookup=self.dictionary == "tool",
        )

    def setup(self, task: Task) -> str:
        self.episode = build_episode(
            task.metadata["seed"], self.num_steps, self.keys_per_turn, self.dict_size, self.value_range
        )
        self.sums = self.episode.running_sums()
        self.step_index = 0
        self.correct = 0
        self.turn_correct = 0
        self.previous_answer = 0
        self.first_error: int | None = None
        if self.dictionary == "prompt":
            table = "\n".join(f"{k}: {v}" for k, v in self.episode.dictionary.items())
            head = f"{task.instruction}\nDictionary:\n{table}\n"
        else:
            head = f"{task.instruction}\nThe dictionary is hidden: use the lookup tool to read values.\n"
        return head + self._prompt()

    def _prompt(self) -> str:
        keys = ", ".join(self.episode.keys[self.step_index])
        return f"Step {self.step_index + 1}/{self.num_steps}. Keys: {keys}."

    def _metrics(self) -> dict[str, Any]:
        done = max(self.step_index, 1)
        return {
            "step": self.step_index,
            "step_accuracy": self.correct / done,
            "turn_accuracy": self.turn_correct / done,
            "task_accuracy": float(self.first_error is None and self.step_index > 0),
            "first_error_step": self.first_error,
        }

    @tool
    def lookup(self, key: str) -> str:
        """Read the value of a key from the dictionary.

        Args:
            key: A five-letter key shown in the current step.
        """
        value = self.episode.dictionary.get(key.strip().lower())
        if value is None:
            raise ToolError(f"unknown key {key!r}")
        return str(value)

    def on_answer(self, answer: str) -> Outcome:
        value = parse_integer(answer)
        if isinstance(value, str):
            return Outcome(
                f"Invalid answer ({value}): reply with the running sum as a whole number, like <answer>-12</answer>.",
                invalid=True,
                info=self._metrics(),
            )
        ep, i = self.episode, self.step_index
        ok = value == self.sums[i]
        increment = sum(ep.dictionary[k] for k in ep.keys[i])
        self.turn_correct += value - self.previous_answer == increment
        self.previous_answer = value
        self.correct += ok
        if not ok and self.first_error is None:
            self.first_error = i + 1
        self.step_index += 1
        finished = self.step_index == self.num_steps
        if self.reward_mode == "step":
            reward = 1.0 / self.num_steps if ok else 0.0
        else:
            reward = 1.0 if finished and self.first_error is None else 0.0
        note = ("Correct." if ok else "Incorrect.") + " " if self.feedback else ""
        if finished:
            success = self.first_error is None
            return Outcome(f"{note}All {self.num_steps} steps done.", reward, True, success, info=self._metrics())
        return Outcome(note + self._prompt(), reward, info=self._metrics())
