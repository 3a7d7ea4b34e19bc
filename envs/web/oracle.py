"""A scripted expert for the web envs: follows a task's plan, reading refs off the outline.

The plan names elements by role and accessible name ("the link 'Orders'"); the oracle
finds their `[ref=eN]` in the observation it was just shown, exactly as an agent reading
the outline would, and scrolls when the element is in a part of the outline that was cut.
It never looks at the DOM. Tests and `bench/web.py` use it; it is also a reference policy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentgym.envs.web.snapshot import find_ref

from agentgym.env import Task
from agentgym.oracle import ReplayOracle

__all__ = ["WebOracle", "tool_call"]


def tool_call(name: str, **arguments: Any) -> str:
    """The action text of one tool call."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


class WebOracle(ReplayOracle):
    """Plays a task's `metadata["plan"]` one action per turn.

    Given several tasks, it plays the one whose instruction the episode's first
    observation shows, so one oracle serves a pool's episodes (`respond`).

    Example:
        >>> oracle = WebOracle(task)
        >>> obs, info = env.reset(options={"task_id": task.id})
        >>> while not done:
        ...     obs, reward, done, truncated, info = env.step(oracle.act(obs))
        >>> policy = ScriptedPolicy(tokenizer, WebOracle(env.unwrapped.tasks("test")))
    """

    def __init__(self, tasks: Task | Sequence[Task]):
        self.tasks = [tasks] if isinstance(tasks, Task) else list(tasks)
        self.reset()

    def reset(self) -> None:
        self.plan: list[dict[str, Any]] | None = self.tasks[0].metadata["plan"] if len(self.tasks) == 1 else None
        self.index = 0

    def act(self, observation: str) -> str:
        """The next action, given the latest observation."""
        if self.plan is None:
            self.plan = self._plan_shown_in(observation)
        if self.index >= len(self.plan):
            return "<answer>done</answer>"
        step = self.plan[self.index]
        op = step["op"]
        if op == "answer":
            self.index += 1
            return f"<answer>{step['text']}</answer>"
        if op == "goto":
            self.index += 1
            return tool_call("goto", url=step["url"])
        ref = find_ref(observation, step["role"], step["name"])
        if ref is None:
            if "scroll down" in observation:
                return tool_call("scroll", direction="down")
            if "scroll up" in observation:
                return tool_call("scroll", direction="up")
            # The element is not on this page: a real agent would be lost too; give up.
            self.index = len(self.plan)
            return f"<answer>could not find the {step['role']} {step['name']!r}</answer>"
        self.index += 1
        if op == "click":
            return tool_call("click", ref=ref)
        if op == "type":
            return tool_call("type", ref=ref, text=step["text"], submit=step["submit"])
        return tool_call("select", ref=ref, option=step["option"])

    def _plan_shown_in(self, observation: str) -> list[dict[str, Any]]:
        for task in self.tasks:
            if task.instruction in observation:
                return task.metadata["plan"]
        raise ValueError(
            f"none of the oracle's {len(self.tasks)} tasks has its instruction in the first observation: "
            "give WebOracle the tasks of the split the episodes run on"
        )
