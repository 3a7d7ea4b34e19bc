"""`ScriptedPolicy`: a policy whose replies come from an oracle or a Python function (tests, baselines)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentgym.oracle import Oracle
from agentgym.policy.base import Generation, Policy, SamplingParams

__all__ = ["ScriptedPolicy"]

Responder = Callable[[list[dict[str, Any]]], str]


class ScriptedPolicy(Policy):
    """Replies with `respond(messages)`, tokenised with `tokenizer` and closed with the
    end-of-turn token, exactly as a model's completion would be.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        respond: an oracle (`agentgym.oracle.Oracle`), or a function like its `respond`:
            maps the conversation so far (system, user, assistant, ... messages) to the
            next reply's text. A list of strings is replayed in order for every episode,
            indexed by the number of assistant messages so far.

    Example:
        >>> policy = ScriptedPolicy(tok, BisectionOracle(16))
        >>> policy = ScriptedPolicy(tok, lambda msgs: "<answer>8</answer>")
    """

    def __init__(self, tokenizer: Any, respond: Oracle | Responder | Sequence[str], name: str = "scripted"):
        self.tokenizer = tokenizer
        self.name = name
        if isinstance(respond, Oracle):
            self.respond = respond.respond
        elif callable(respond):
            self.respond = respond
        else:
            replies = list(respond)
            self.respond = lambda msgs: replies[min(sum(m["role"] == "assistant" for m in msgs), len(replies) - 1)]
        self.eos_id = tokenizer.eos_token_id

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        messages: Sequence[list[dict[str, Any]]] | None = None,
    ) -> list[Generation]:
        if messages is None:
            raise ValueError("ScriptedPolicy needs the conversations as messages")
        out = []
        for msgs in messages:
            text = self.respond(list(msgs))
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            reason = "stop"
            if len(ids) >= params.max_new_tokens:  # the token budget cuts scripted replies too
                ids, reason = ids[: params.max_new_tokens], "length"
                text = self.tokenizer.decode(ids)
            else:
                ids = [*ids, self.eos_id]
            out.append(Generation(ids, [0.0] * len(ids), text, reason))
        return out
