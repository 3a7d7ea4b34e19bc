"""Web tasks: templates over the seeded data, each with the oracle's plan and a checker.

A task's `metadata` holds its `kind` ("info": checked against the answer; "state":
checked against the database after the episode), the hidden `answer` or `expect`ed
changes, and the `plan`: the steps an expert takes, each naming an element by role and
accessible name (never by ref), so an agent that reads the outline can follow it.
`min_turns` is the plan's length.
"""

from __future__ import annotations

import random
import re
from typing import Any

from agentgym.env import Task

__all__ = ["answer", "check_answer", "click", "goto", "select", "split_tasks", "type_text"]

Step = dict[str, Any]


def click(role: str, name: str) -> Step:
    return {"op": "click", "role": role, "name": name}


def type_text(role: str, name: str, text: str, submit: bool = False) -> Step:
    return {"op": "type", "role": role, "name": name, "text": text, "submit": submit}


def select(name: str, option: str) -> Step:
    return {"op": "select", "role": "combobox", "name": name, "option": option}


def goto(url: str) -> Step:
    return {"op": "goto", "url": url}


def answer(text: str) -> Step:
    return {"op": "answer", "text": text}


def difficulty(turns: int) -> str:
    return "easy" if turns <= 5 else ("medium" if turns <= 12 else "hard")


def split_tasks(
    prefix: str, groups: dict[str, list[tuple[str, dict[str, Any]]]], split: str, seed: int, test_fraction: float = 0.2
) -> list[Task]:
    """Tasks of `split` from template instances `{template: [(instruction, metadata)]}`.

    Each template's instances are shuffled with `seed` and cut, so both splits hold every
    template. A task's id depends only on its template and its index in the enumeration.
    """
    out = []
    for template, instances in groups.items():
        order = list(range(len(instances)))
        random.Random(f"{prefix}-{template}-{seed}").shuffle(order)
        cut = max(1, round(len(order) * test_fraction))
        chosen = order[:cut] if split == "test" else order[cut:]
        for i in sorted(chosen):
            instruction, meta = instances[i]
            turns = len(meta["plan"])
            out.append(
                Task(
                    id=f"{prefix}-{template}-{i:03d}",
                    instruction=instruction,
                    split=split,
                    min_turns=turns,
                    difficulty=difficulty(turns),
                    metadata={"template": template, **meta},
                )
            )
    return out


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w$.#/ -]", " ", text.lower()).split())


def check_answer(expected: str, kind: str, given: str) -> tuple[bool, str]:
    """Judge an answer: kind "money" (a price), "int", "name" (a name the answer must
    contain, in an answer not much longer than it) or "user" (a username or "nobody")."""
    if kind in ("money", "int"):
        numbers = re.findall(r"-?\d+(?:\.\d+)?", given.replace(",", ""))
        if not numbers:
            return False, f"the answer should be a number, got {given[:60]!r}"
        ok = abs(float(numbers[0]) - float(expected)) < 0.005
        return ok, "correct" if ok else "wrong value"
    got, want = _norm(given), _norm(expected)
    if kind == "user" and want == "nobody":
        ok = got in ("nobody", "no one", "none", "unassigned")
    else:
        ok = re.search(rf"(?<![\w]){re.escape(want)}(?![\w])", got) is not None and len(got) <= len(want) + 40
    return ok, "correct" if ok else "wrong answer"


def dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
