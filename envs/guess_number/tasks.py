"""GuessNumber tasks: a hidden target per task, drawn from the task seed."""

from __future__ import annotations

import numpy as np

from agentgym.env import Task

SPLIT_CODES = {"train": 0, "test": 1}


def bisection_turns(target: int, n: int) -> int:
    """Guesses binary search (midpoint (lo+hi)//2) needs to hit `target` in [1, n]."""
    lo, hi, turns = 1, n, 0
    while True:
        turns += 1
        mid = (lo + hi) // 2
        if mid == target:
            return turns
        lo, hi = (mid + 1, hi) if target > mid else (lo, mid - 1)


def make_tasks(split: str, n: int, count: int, seed: int) -> list[Task]:
    rng = np.random.default_rng([seed, SPLIT_CODES[split], n])
    targets = rng.integers(1, n + 1, size=count)
    worst = bisection_turns(n, n)
    tasks = []
    for i, target in enumerate(targets.tolist()):
        need = bisection_turns(target, n)
        tasks.append(
            Task(
                id=f"guess{n}-{split}-{i:04d}",
                instruction=(
                    f"I am thinking of a whole number between 1 and {n}. Find it. Each turn, make one guess; "
                    "I will tell you whether my number is higher or lower."
                ),
                split=split,
                min_turns=need,
                difficulty="easy" if need <= worst // 2 else ("medium" if need < worst else "hard"),
                metadata={"target": target, "n": n},
            )
        )
    return tasks
