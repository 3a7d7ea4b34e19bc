"""Prompts and chat-template token deltas.

The rollout never re-renders a conversation: it keeps the token ids the policy saw and
appends, after each completion, the tokens the chat template puts between the model's
message and the next one. Those tokens come from the template itself (render with and
without the new message, take the suffix), so there are no hard-coded chat markers and
no re-tokenisation drift.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["ChatFormat", "system_prompt"]

BASE_INSTRUCTIONS = (
    "You are an agent solving a task by interacting with an environment over several turns. "
    "Each turn, read the latest observation and reply with exactly one action."
)


def system_prompt(
    action_format: str,
    tools: Sequence[dict[str, Any]] = (),
    *,
    render_tools: bool = True,
    max_turns: int | None = None,
    instructions: str = BASE_INSTRUCTIONS,
) -> str:
    """The system message: general instructions, the tools (when the chat template cannot
    render them itself), how to write actions, and optionally the turn budget."""
    parts = [instructions]
    if tools and render_tools:
        listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        parts.append(f"You may call these tools, described as JSON schemas:\n<tools>\n{listing}\n</tools>")
    if action_format:
        parts.append(action_format)
    if max_turns is not None:
        parts.append(f"You have at most {max_turns} turns.")
    return "\n\n".join(parts)


class ChatFormat:
    """Token ids of a conversation under a tokenizer's chat template, built incrementally.

    Args:
        tokenizer: a Hugging Face tokenizer with a `chat_template`.
        tools_in_template: whether to pass tool schemas to the template (`tools=`); default:
            when the template mentions tools. Otherwise `system_prompt` renders them.

    Example:
        >>> fmt = ChatFormat(tokenizer)
        >>> ids = fmt.start([{"role": "system", "content": "..."}, {"role": "user", "content": "obs"}])
        >>> ids += completion_ids + fmt.closing(completion_ids) + fmt.user_turn("next observation")
    """

    def __init__(self, tokenizer: Any, tools_in_template: bool | None = None):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no chat template; "
                "set tokenizer.chat_template or use an instruct/chat model"
            )
        self.tokenizer = tokenizer
        template = tokenizer.chat_template
        self.tools_in_template = ("tools" in template) if tools_in_template is None else tools_in_template
        self.tools: list[dict[str, Any]] | None = None
        self._base = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
        self._closing: list[int] | None = None
        self._prefix: str | None = None

    # -------------------------------------------------------------- rendering

    def render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool) -> str:
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
        if self.tools_in_template and self.tools:
            kwargs["tools"] = self.tools
        return self.tokenizer.apply_chat_template(list(messages), **kwargs)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    # -------------------------------------------------------------- incremental ids

    def start(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None) -> list[int]:
        """Ids of the opening messages (system, user) plus the generation prompt."""
        self.tools = list(tools) if tools else None
        self._prefix = None  # the template's output can depend on the tools
        self._closing = None
        return self.encode(self.render(messages, add_generation_prompt=True))

    def closing(self, completion_ids: Sequence[int]) -> list[int]:
        """Tokens the template puts after an assistant message that the model did not
        generate itself: e.g. ChatML's newline after `<|im_end|>`, or all of
        `<|im_end|>\\n` when the completion was cut by the token budget."""
        if self._closing is None:
            opened = self.render(self._base, add_generation_prompt=True)
            closed = self.render([*self._base, {"role": "assistant", "content": "A"}], add_generation_prompt=False)
            if not closed.startswith(opened + "A"):
                raise ValueError(
                    "the chat template does not render an assistant message as generation prompt + content; "
                    "agentgym cannot build token-exact trajectories with it"
                )
            self._closing = self.encode(closed[len(opened) + 1 :])
        tail = self._closing
        done = 0
        for k in range(min(len(tail), len(completion_ids)), 0, -1):
            if list(completion_ids[-k:]) == tail[:k]:
                done = k
                break
        return tail[done:]

    def user_turn(self, content: str, role: str = "user") -> list[int]:
        """Ids of a new message (an observation) plus the next generation prompt."""
        base = [*self._base, {"role": "assistant", "content": "A"}]
        if self._prefix is None:
            self._prefix = self.render(base, add_generation_prompt=False)
        full = self.render([*base, {"role": role, "content": content}], add_generation_prompt=True)
        if not full.startswith(self._prefix):
            raise ValueError("the chat template re-renders earlier messages when one is added; cannot take a delta")
        return self.encode(full[len(self._prefix) :])
