"""Scripted oracles: policies that solve an env from what it shows them.

An oracle is any object with `respond(messages) -> str`: given the conversation so far
(system, user, assistant, ... messages, as a chat policy sees it), the next reply. One
oracle serves many episodes at once (a pool interleaves them), so it derives what it
knows of an episode from that episode's conversation, never from the calls before.
`ScriptedPolicy` turns an oracle into a `Policy`; the warm start (`warm_start.oracle`)
collects its episodes with one.

An oracle that is natural to write observation by observation subclasses `ReplayOracle`:
it implements `reset()` and `act(observation)`, and `respond` replays the conversation's
observations (its user messages, the task's first) into it.

Example:
    >>> class Countdown(ReplayOracle):
    ...     def reset(self):
    ...         self.left = 3
    ...
    ...     def act(self, observation):
    ...         self.left -= 1
    ...         return f"<answer>{self.left}</answer>"
    >>> msgs = [{"role": "system", "content": "..."}, {"role": "user", "content": "the task"}]
    >>> Countdown().respond(msgs + [{"role": "assistant", "content": "<answer>2</answer>"},
    ...                             {"role": "user", "content": "wrong"}])
    '<answer>1</answer>'
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

__all__ = ["Oracle", "ReplayOracle"]


@runtime_checkable
class Oracle(Protocol):
    """The one oracle protocol: the next reply of a conversation, from the conversation alone."""

    def respond(self, messages: list[dict[str, Any]]) -> str: ...


class ReplayOracle(ABC):
    """An oracle written turn by turn: `reset()` starts an episode, `act(observation)`
    reads the env's next observation and returns the reply to it.

    Played directly against an env (`oracle.reset()`, then `env.step(oracle.act(obs))`
    each turn), or as an `Oracle`: `respond(messages)` resets it and replays the
    conversation's user messages in order, returning the reply to the last one. So a
    shared instance gives each episode its own state, and `act` sees exactly the text
    the policy saw (no `info`: a conversation does not carry it).
    """

    # One replay at a time: `respond` rebuilds the state in place, and policies served
    # over HTTP may ask from several threads.
    _replaying = threading.RLock()

    @abstractmethod
    def reset(self) -> None:
        """Forget the episode: the state a fresh instance has."""

    @abstractmethod
    def act(self, observation: str) -> str:
        """The reply to the env's next observation (the first is the task)."""

    def respond(self, messages: list[dict[str, Any]]) -> str:
        """The reply to the conversation's last observation, after replaying the ones before."""
        with self._replaying:
            self.reset()
            reply = ""
            for m in messages:
                if m["role"] == "user":
                    reply = self.act(m["content"])
            return reply
