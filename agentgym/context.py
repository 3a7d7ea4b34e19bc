"""Context strategies: what the policy sees when an episode outgrows its window.

Each strategy decides, after every env step, how the new observation enters the
episode's working context (`Episode.context_messages`, token ids in `Episode.segment`).
The record is always exactly what the policy saw: whenever the context changes other
than by appending, a new `Segment` starts whose prompt is the re-rendered conversation.

- `full`: append every observation; past the window the episode ends `overlong`.
- `keep_last_k` (MiroThinker, WebAgent-R1): only the last K observations are shown in
  full; older ones become a short placeholder. The policy sees exactly the last K at
  every turn, so from turn K+1 on, every turn starts a new segment (prompt = the
  re-rendered shortened conversation, completion = one action). That costs a segment
  per turn but keeps the method's meaning; the first observation (the task) is never
  replaced.
- `summarize` (SUPO): when the next turn would pass `summary_threshold` x the window, the
  latest observation is held back (SUPO drops the last action/observation pair from the
  working context; the env has executed the action, so its observation is carried into
  the next context instead of being lost) and a user message the env never sees asks
  the policy for a `<summary>`. That reply ends the segment (`Segment.kind == "summary"`:
  its last completion is the summary, loss mask 1 when `train_on_summaries`, else 0, its
  log-probs kept either way). The next segment starts from system + task + "We are at the
  following stage of solving the problem:" + summary + the held-back observation. After
  `max_summaries` summaries, a context that needs one more ends the episode `overlong`.
  The trigger also keeps room for the request and a full-length summary, so a summary
  always fits the window.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentgym.rollout.episode import Episode

__all__ = [
    "PLACEHOLDER",
    "STAGE",
    "SUMMARY_REQUEST",
    "ContextStrategy",
    "KeepLastK",
    "Summarize",
    "extract_summary",
    "make_context_strategy",
]

SUMMARY_REQUEST = (
    "Your working context is almost full. Do not act now and do not call any tool. Write a summary of "
    "your progress: everything you will need to finish the task (facts found, intermediate results, "
    "what is left to do), inside <summary>...</summary>."
)
STAGE = "We are at the following stage of solving the problem:"
PLACEHOLDER = "[An earlier observation was omitted to save context.]"

_SUMMARY = re.compile(r"<summary>(.*?)(?:</summary>|$)", re.DOTALL)


def extract_summary(text: str) -> str:
    """The content of the reply's `<summary>` block (an unclosed block runs to the end);
    the whole reply when it has none."""
    m = _SUMMARY.search(text)
    return (m.group(1) if m else text).strip()


class ContextStrategy:
    """`full`: every observation is appended to the one growing context."""

    name = "full"

    def on_observation(self, ep: Episode, observation: str, info: dict[str, Any]) -> None:
        """Put a (non-final) observation into the episode's working context."""
        ep.append_observation(observation, ep.fmt.user_turn(observation), info)


class KeepLastK(ContextStrategy):
    """Observations older than the last `k` are replaced by `placeholder`.

    Args:
        k: observations shown in full (the task, the first user message, is not counted
            and never replaced).
        placeholder: the text that stands for an omitted observation.
    """

    name = "keep_last_k"

    def __init__(self, k: int, placeholder: str = PLACEHOLDER):
        if k < 1:
            raise ValueError(f"keep_last_k must be >= 1, got {k}")
        self.k, self.placeholder = k, placeholder

    def on_observation(self, ep: Episode, observation: str, info: dict[str, Any]) -> None:
        messages = [*ep.context_messages, {"role": "user", "content": observation}]
        shown = [
            i for i, m in enumerate(messages) if i >= 2 and m["role"] == "user" and m["content"] != self.placeholder
        ]
        if len(shown) <= self.k:
            ep.append_observation(observation, ep.fmt.user_turn(observation), info)
            return
        for i in shown[: -self.k]:
            messages[i] = {"role": "user", "content": self.placeholder}
        ep.restart(messages, info)


class Summarize(ContextStrategy):
    """SUPO's summarization (see the module docstring).

    Args:
        threshold: fraction of the window (`max_context_tokens`) past which the policy is
            asked for a summary instead of its next action.
        request: the user message that asks for the summary.
        stage: the line that introduces the summary in the next context.
    """

    name = "summarize"

    def __init__(self, threshold: float = 0.95, request: str = SUMMARY_REQUEST, stage: str = STAGE):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"summary_threshold must be in (0, 1], got {threshold}")
        self.threshold, self.request, self.stage = threshold, request, stage

    def limit(self, ep: Episode) -> int:
        """The most tokens the next turn's context may need before a summary is due."""
        window, max_new = ep.options.max_context_tokens, ep.options.max_new_tokens
        # Room for: the next action's closing tokens, the request, and a full-length summary.
        reserve = len(ep.fmt.closing([])) + len(ep.fmt.user_turn(self.request)) + max_new
        return min(int(self.threshold * window), window - reserve)

    def on_observation(self, ep: Episode, observation: str, info: dict[str, Any]) -> None:
        delta = ep.fmt.user_turn(observation)
        if len(ep.segment) + len(delta) + ep.options.max_new_tokens <= self.limit(ep):
            ep.append_observation(observation, delta, info)
        elif not ep.budget.may_summarize(ep.traj.summaries):
            ep.finish("overlong", info)
        else:
            ep.ask_for_summary(self.request, observation, info)

    def next_context(self, ep: Episode, reply: str, held_back: str) -> list[dict[str, str]]:
        """The next segment's conversation: system, then task + stage + summary + the
        observation that was held back from the summarized context."""
        system, task = ep.context_messages[0], ep.task_prompt
        content = f"{task}\n\n{self.stage}\n{extract_summary(reply)}\n\nThe latest observation:\n{held_back}"
        return [system, {"role": "user", "content": content}]


def make_context_strategy(context: str, *, keep_last_k: int = 5, summary_threshold: float = 0.95) -> ContextStrategy:
    """The strategy named by `RolloutConfig.context`."""
    if context == "full":
        return ContextStrategy()
    if context == "keep_last_k":
        return KeepLastK(keep_last_k)
    if context == "summarize":
        return Summarize(summary_threshold)
    raise ValueError(f"unknown context strategy {context!r}; use full, keep_last_k or summarize")
