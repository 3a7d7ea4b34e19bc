"""GuessNumber oracles from the feedback alone (they never peek at the target): the
optimal bisection, written turn by turn (`ReplayOracle`), a random guesser that stays
inside the interval still possible, which reads the whole conversation (`agentgym.oracle`),
and the same guesser that also writes the summaries a summarizing context asks for."""

from __future__ import annotations

import random
import re
from typing import Any

from agentgym.oracle import ReplayOracle

_FEEDBACK = re.compile(r"(\d+) is wrong: my number is (higher|lower)")
_BETWEEN = re.compile(r"The number is between (\d+) and (\d+)\.")


class BisectionOracle(ReplayOracle):
    """Guesses the midpoint of the interval still possible; wins in `task.min_turns` turns.

    Args:
        n: the range [1, n] of the env.
        use_tool: guess through the `guess` tool instead of `<answer>`.
    """

    def __init__(self, n: int, use_tool: bool = False):
        self.n, self.use_tool = n, use_tool
        self.reset()

    def reset(self) -> None:
        self.lo, self.hi = 1, self.n

    def act(self, observation: str) -> str:
        m = _FEEDBACK.search(observation)
        if m:
            k = int(m.group(1))
            self.lo, self.hi = (k + 1, self.hi) if m.group(2) == "higher" else (self.lo, k - 1)
        mid = (self.lo + self.hi) // 2
        if self.use_tool:
            return f'<tool_call>{{"name": "guess", "arguments": {{"n": {mid}}}}}</tool_call>'
        return f"<answer>{mid}</answer>"


class ConsistentRandomGuesser:
    """Guesses uniformly at random inside the interval the feedback still allows.

    Demonstrations for a warm start: cloning its wins teaches the reply format and to read
    the feedback, and leaves *where* to guess in the interval (the midpoint wins soonest)
    to RL. Cloning `BisectionOracle` instead leaves RL nothing to learn: its policy is
    deterministic and every group's rewards are equal.

    Args:
        n: the range [1, n] of the env.
        seed: seed of the draws (one stream for all episodes, so they differ).
        template: the reply, with `{}` where the number goes.
    """

    def __init__(self, n: int, seed: int = 0, template: str = "<answer>{}</answer>"):
        self.n, self.template = n, template
        self.rng = random.Random(seed)

    def interval(self, messages: list[dict[str, Any]]) -> tuple[int, int]:
        """The interval the visible conversation still allows: its feedback, and the bounds
        of a summary (`SummarizingGuesser`'s) that a summarizing context carried over."""
        lo, hi = 1, self.n
        for m in messages:
            if m["role"] != "user":
                continue
            for a, b in _BETWEEN.findall(m["content"]):
                lo, hi = max(lo, int(a)), min(hi, int(b))
            for k, side in _FEEDBACK.findall(m["content"]):
                lo, hi = (max(lo, int(k) + 1), hi) if side == "higher" else (lo, min(hi, int(k) - 1))
        return lo, hi

    def respond(self, messages: list[dict[str, Any]]) -> str:
        lo, hi = self.interval(messages)
        return self.template.format(self.rng.randint(lo, max(lo, hi)))


class SummarizingGuesser(ConsistentRandomGuesser):
    """`ConsistentRandomGuesser` that answers a summary request (a user message asking for
    a `<summary>`, as `rollout.context=summarize` sends when the window fills) with the
    state worth keeping: ``<summary>The number is between L and H.</summary>``; after the
    summary it reads the bounds back from it. The scripted summariser of warm starts under
    a summarizing context (`warm_start.context=rollout`), so that the summaries the policy
    writes in RL are a format it has seen.
    """

    def respond(self, messages: list[dict[str, Any]]) -> str:
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if "<summary>" in last:
            lo, hi = self.interval(messages)
            return f"<summary>The number is between {lo} and {max(lo, hi)}.</summary>"
        return super().respond(messages)
