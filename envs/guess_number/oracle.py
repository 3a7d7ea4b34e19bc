"""The optimal GuessNumber policy: bisection on the feedback (it never peeks at the target)."""

from __future__ import annotations

import re
from typing import Any

_FEEDBACK = re.compile(r"(\d+) is wrong: my number is (higher|lower)")


class BisectionOracle:
    """Guesses the midpoint of the interval still possible; wins in `task.min_turns` turns.

    Args:
        n: the range [1, n] of the env.
        use_tool: guess through the `guess` tool instead of `<answer>`.
    """

    def __init__(self, n: int, use_tool: bool = False):
        self.n, self.use_tool = n, use_tool
        self.lo, self.hi = 1, n

    def reset(self) -> None:
        self.lo, self.hi = 1, self.n

    def act(self, observation: str, info: dict[str, Any] | None = None) -> str:
        m = _FEEDBACK.search(observation)
        if m:
            k = int(m.group(1))
            self.lo, self.hi = (k + 1, self.hi) if m.group(2) == "higher" else (self.lo, k - 1)
        mid = (self.lo + self.hi) // 2
        if self.use_tool:
            return f'<tool_call>{{"name": "guess", "arguments": {{"n": {mid}}}}}</tool_call>'
        return f"<answer>{mid}</answer>"
