"""Context strategies: what the policy sees when an episode outgrows its window.

A strategy decides how each observation enters the episode's working context
(`Episode.context_messages`, token ids in `Episode.segment`). The record is always exactly
what the policy saw: whenever the context changes other than by appending, a new
`Segment` starts whose prompt is the re-rendered conversation (`Episode.restart`).

A strategy is a `ContextStrategy` subclass with three hooks the episode calls, found by
name in a registry that installed packages extend through the entry-point group
`agentgym.contexts` (as environments extend `agentgym.envs`). Its parameters are a
dataclass, `Config`, which becomes the config section named after it
(`rollout.<name>.<key>`, listed by `--help-config`). One instance serves one episode, so
a strategy may keep per-episode state on `self`.

    from agentgym.rollout.context import ContextStrategy, register_context

    @dataclass
    class DropOldToolResultsConfig:
        turns: int = help_field(3, "tool results older than this many turns become a placeholder")

    @register_context("drop_old_tool_results")
    class DropOldToolResults(ContextStrategy):
        Config = DropOldToolResultsConfig
        def on_observation(self, ep, observation, info): ...

Built in:

- `full`: append every observation; past the window the episode ends `overlong`.
- `keep_last_k` (MiroThinker, WebAgent-R1): only the last K observations are shown in
  full; older ones become a short placeholder. The policy sees exactly the last K at
  every turn, so from turn K+1 on, every turn starts a new segment (prompt = the
  re-rendered shortened conversation, completion = one action). That costs a segment
  per turn but keeps the method's meaning; the first observation (the task) is never
  replaced.
- `summarize` (SUPO): when the next turn would pass `threshold` x the window, the
  latest observation is held back (SUPO drops the last action/observation pair from the
  working context; the env has executed the action, so its observation is carried into
  the next context instead of being lost) and a user message the env never sees asks
  the policy for a `<summary>` (`Episode.ask`). That reply ends the segment
  (`Segment.kind == "summary"`: its last completion is the summary, loss mask 1 when
  `train_on_summaries`, else 0, its log-probs kept either way). The next segment starts
  from system + task + "We are at the following stage of solving the problem:" + summary
  + the held-back observation. After `max_summaries` summaries, a context that needs one
  more ends the episode `overlong`. The trigger also keeps room for the request and a
  full-length summary, so a summary always fits the window.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from agentgym.config import ConfigError, help_field
from agentgym.plugins import Registry

if TYPE_CHECKING:
    from agentgym.rollout.episode import Episode
    from agentgym.trajectory import Segment, Span

__all__ = [
    "CONTEXTS",
    "PLACEHOLDER",
    "STAGE",
    "SUMMARY_REQUEST",
    "ContextStrategy",
    "KeepLastK",
    "KeepLastKConfig",
    "Summarize",
    "SummarizeConfig",
    "context_configs",
    "extract_summary",
    "make_context",
    "register_context",
]

SUMMARY_REQUEST = (
    "Your working context is almost full. Do not act now and do not call any tool. Write a summary of "
    "your progress: everything you will need to finish the task (facts found, intermediate results, "
    "what is left to do), inside <summary>...</summary>."
)
STAGE = "We are at the following stage of solving the problem:"
PLACEHOLDER = "[An earlier observation was omitted to save context.]"

_SUMMARY = re.compile(r"<summary>(.*?)(?:</summary>|$)", re.DOTALL)

#: Context strategies by name (`rollout.context`); packages add theirs through the
#: entry-point group `agentgym.contexts`.
CONTEXTS: Registry[type[ContextStrategy]] = Registry("context strategy", "agentgym.contexts")


def extract_summary(text: str) -> str:
    """The content of the reply's `<summary>` block (an unclosed block runs to the end);
    the whole reply when it has none."""
    m = _SUMMARY.search(text)
    return (m.group(1) if m else text).strip()


class ContextStrategy:
    """The interface, and the `full` strategy: every observation is appended to the one
    growing context.

    Hooks (each may change the context only through the episode's `append_observation`,
    `restart`, `ask` and `finish`):

    - `on_observation(ep, observation, info)`: a non-final observation arrived.
    - `on_reply(ep, reply, span)`: the policy's reply has been recorded as `span`
      (`span.kind` is "action", or the kind of an `Episode.ask` request); return the
      action to send to the env, or None when the reply is not one (the strategy has
      then set the next context, or ended the episode).
    - `on_restart(ep, segment)`: a new segment started (the first one included).

    Args:
        config: an instance of `Config` (None: its defaults), the `rollout.<name>` section.
    """

    name: ClassVar[str] = "full"
    #: The dataclass of the strategy's parameters (None: it has none).
    Config: ClassVar[type | None] = None

    def __init__(self, config: Any = None):
        if config is None and self.Config is not None:
            config = self.Config()
        self.config = config

    def on_observation(self, ep: Episode, observation: str, info: dict[str, Any]) -> None:
        ep.append_observation(observation, info)

    def on_reply(self, ep: Episode, reply: str, span: Span) -> str | None:
        return reply

    def on_restart(self, ep: Episode, segment: Segment) -> None:
        pass


def register_context(name: str, *, override: bool = False) -> Callable[[type[ContextStrategy]], type[ContextStrategy]]:
    """Class decorator: register a `ContextStrategy` subclass as `rollout.context: name`."""

    def add(cls: type[ContextStrategy]) -> type[ContextStrategy]:
        if not (isinstance(cls, type) and issubclass(cls, ContextStrategy)):
            raise TypeError(f"context strategy {name!r} must be a ContextStrategy subclass, got {cls!r}")
        cls.name = name
        return CONTEXTS.register(name, cls, override=override)

    return add


def make_context(name: str, config: Any = None) -> ContextStrategy:
    """A new instance (one per episode) of the strategy registered as `name`."""
    try:
        cls = CONTEXTS.get(name)
    except KeyError as exc:
        raise ConfigError(f"rollout.context: {exc.args[0]}") from None
    return cls(config)


def context_configs() -> dict[str, type]:
    """The config class of every registered strategy that has parameters, by name: the
    sections `rollout.<name>` of the config."""
    return {name: cls.Config for name, cls in CONTEXTS.items().items() if cls.Config is not None}


CONTEXTS.register("full", ContextStrategy)


@dataclass
class KeepLastKConfig:
    k: int = help_field(5, "observations shown in full (the task is not counted and never replaced)")
    placeholder: str = help_field(PLACEHOLDER, "the text that stands for an omitted observation")

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"rollout.keep_last_k.k must be >= 1, got {self.k}")


@register_context("keep_last_k")
class KeepLastK(ContextStrategy):
    """Observations older than the last `k` are replaced by a placeholder."""

    Config = KeepLastKConfig

    def on_observation(self, ep: Episode, observation: str, info: dict[str, Any]) -> None:
        k, placeholder = self.config.k, self.config.placeholder
        messages = [*ep.context_messages, {"role": "user", "content": observation}]
        shown = [i for i, m in enumerate(messages) if i >= 2 and m["role"] == "user" and m["content"] != placeholder]
        if len(shown) <= k:
            ep.append_observation(observation, info)
            return
        for i in shown[:-k]:
            messages[i] = {"role": "user", "content": placeholder}
        ep.restart(messages, info)


@dataclass
class SummarizeConfig:
    threshold: float = help_field(0.95, "ask for a summary past this fraction of the window")
    max_summaries: int | None = help_field(3, "most summaries; one more ends the episode overlong (null: no limit)")
    train_on_summaries: bool = help_field(True, "loss mask 1 on summary tokens (false: recorded, not trained)")
    request: str = help_field(SUMMARY_REQUEST, "the user message that asks for the summary")
    stage: str = help_field(STAGE, "the line that introduces the summary in the next context")

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"rollout.summarize.threshold must be in (0, 1], got {self.threshold}")
        if self.max_summaries is not None and self.max_summaries < 0:
            raise ConfigError(f"rollout.summarize.max_summaries must be >= 0 or null, got {self.max_summaries}")

    def may_summarize(self, summaries_so_far: int) -> bool:
        """Whether one more summary is allowed."""
        return self.max_summaries is None or summaries_so_far < self.max_summaries


@register_context("summarize")
class Summarize(ContextStrategy):
    """SUPO's summarization (see the module docstring)."""

    Config = SummarizeConfig

    def __init__(self, config: SummarizeConfig | None = None):
        super().__init__(config)
        self.held_back: str | None = None  # the observation kept out of the summarized context

    def limit(self, ep: Episode) -> int:
        """The most tokens the next turn's context may need before a summary is due."""
        window, max_new = ep.options.max_context_tokens, ep.options.max_new_tokens
        # Room for: the next action's closing tokens, the request, and a full-length summary.
        reserve = len(ep.fmt.closing([])) + len(ep.fmt.user_turn(self.config.request)) + max_new
        return min(int(self.config.threshold * window), window - reserve)

    def on_observation(self, ep: Episode, observation: str, info: dict[str, Any]) -> None:
        delta = ep.fmt.user_turn(observation)
        if len(ep.segment) + len(delta) + ep.options.max_new_tokens <= self.limit(ep):
            ep.append_observation(observation, info, delta=delta)
        elif not self.config.may_summarize(ep.traj.summaries):
            ep.finish("overlong", info)
        else:
            self.held_back = observation
            ep.ask(self.config.request, kind="summary", trained=self.config.train_on_summaries, info=info)

    def on_reply(self, ep: Episode, reply: str, span: Span) -> str | None:
        if span.kind != "summary":
            return reply
        before = len(ep.segment)
        messages = self.next_context(ep, reply, self.held_back)
        self.held_back = None
        ep.traj.summaries += 1
        ep.traj.messages.append(messages[-1])
        ep.restart(messages, {})
        ep.compressions.append((before, len(ep.segment)))
        return None

    def next_context(self, ep: Episode, reply: str, held_back: str) -> list[dict[str, str]]:
        """The next segment's conversation: system, then task + stage + summary + the
        observation that was held back from the summarized context."""
        system, task = ep.context_messages[0], ep.task_prompt
        content = f"{task}\n\n{self.config.stage}\n{extract_summary(reply)}\n\nThe latest observation:\n{held_back}"
        return [system, {"role": "user", "content": content}]
