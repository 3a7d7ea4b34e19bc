"""BFCL multi-turn tasks: one `Task` per BFCL entry, and the ground-truth replay of a task.

BFCL is an evaluation benchmark, so by default every entry is in the "test" split and
"train" is empty; `train_fraction` moves a deterministic (seeded) share of the entries
to "train" for users who want to train on part of it and test on the rest.
"""

from __future__ import annotations

import inspect
import json
import random

from agentgym.envs.tools.bfcl.backends import backend_class, parse_call
from agentgym.envs.tools.bfcl.data import Entry, load_category

from agentgym.env import Task

__all__ = ["end_turn_action", "gold_actions", "make_tasks", "task_min_turns"]


def task_min_turns(entry: Entry) -> int:
    """Agent messages a perfect agent needs: one message of calls per turn that has ground
    truth (all its calls at once), plus one message per turn to end it."""
    return len(entry.questions) + sum(1 for calls in entry.ground_truth if calls)


def make_tasks(categories: tuple[str, ...], split: str, train_fraction: float, seed: int) -> list[Task]:
    """The tasks of `split`, over the entries of `categories` in BFCL's order."""
    tasks = []
    rng = random.Random(seed)
    for category in categories:
        for entry in load_category(category):
            entry_split = "train" if rng.random() < train_fraction else "test"
            if entry_split != split:
                continue
            n_calls = sum(len(calls) for calls in entry.ground_truth)
            tasks.append(
                Task(
                    id=entry.id,
                    instruction=next(q for q in entry.questions if q is not None),
                    split=split,
                    min_turns=task_min_turns(entry),
                    difficulty=float(n_calls),
                    metadata={"category": category, "entry": entry, "classes": list(entry.involved_classes)},
                )
            )
    return tasks


def _named_arguments(entry: Entry, call: str) -> tuple[str, dict]:
    """A ground-truth call string as (name, arguments by name), binding positional arguments
    to the backend method's parameter names."""
    name, args, kwargs = parse_call(call)
    method = None
    for class_name in entry.involved_classes:  # the last class with the method owns it, as in BFCL
        method = getattr(backend_class(class_name), name, None) or method
    if method is None:
        raise ValueError(f"{entry.id}: ground-truth call {call!r} names no method of {entry.involved_classes}")
    bound = inspect.signature(method).bind_partial(None, *args, **kwargs).arguments
    bound.pop(next(iter(inspect.signature(method).parameters)))  # self
    return name, dict(bound)


def end_turn_action() -> str:
    """The message that ends the current user turn."""
    return "<answer>Done.</answer>"


def gold_actions(task: Task) -> list[str]:
    """The agent messages that replay the task's ground truth: for each turn, one message
    with all its calls, then a message that ends the turn. Scores 1.0 on every task."""
    entry: Entry = task.metadata["entry"]
    actions = []
    for calls in entry.ground_truth:
        if calls:
            parts = []
            for call in calls:
                name, arguments = _named_arguments(entry, call)
                parts.append(f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>")
            actions.append("\n".join(parts))
        actions.append(end_turn_action())
    return actions
