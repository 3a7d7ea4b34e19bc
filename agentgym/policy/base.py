"""The Policy interface: token ids in, token ids + log-probs out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Generation", "Policy", "SamplingParams"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion: these fields alone define the sampled distribution
    on every backend (a model's own generation defaults, e.g. a repetition penalty in its
    generation_config.json, are never applied).

    The distribution is the model's softmax at `temperature`, restricted to the `top_k`
    most likely tokens and then to the smallest set whose mass reaches `top_p`, and
    renormalised. `Generation.logprobs` are log-probabilities under exactly that
    distribution (greedy decoding, temperature 0, records them at temperature 1); with
    top_p = 1 and top_k = 0 they are the model's own, which training recomputes.

    Attributes:
        max_new_tokens: the most tokens one completion may have (a turn's token budget).
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling threshold (1.0 = off).
        stop: strings that end a completion (the string is kept in the completion).
        seed: seed of the sampler for this call (None: not reseeded).
        top_k: keep the k most likely tokens (0 = off).
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_k: int = 0

    @classmethod
    def from_config(cls, sampling: Any) -> SamplingParams:
        """The parameters a `SamplingConfig` section describes."""
        return cls(
            sampling.max_new_tokens, sampling.temperature, sampling.top_p, tuple(sampling.stop), top_k=sampling.top_k
        )


@dataclass
class Generation:
    """One completion.

    Attributes:
        token_ids: the generated tokens, including the end-of-turn token if one was generated.
        logprobs: log-probability of each generated token under the policy (same length).
        text: the decoded completion, without the end-of-turn token.
        finish_reason: "stop" (end-of-turn token or stop string) or "length" (hit max_new_tokens).
    """

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: Literal["stop", "length"]
    meta: dict[str, Any] = field(default_factory=dict)


class Policy(ABC):
    """Generates completions for a batch of prompts given as token ids.

    `tokenizer` is a Hugging Face tokenizer with a chat template: the rollout renders
    conversations with it, so the tokens a policy sees are exactly the tokens trained on.
    `messages`, when given, are the same prompts as chat messages; backends that can
    only take messages (chat APIs) use them, the others ignore them.
    """

    tokenizer: Any
    name: str = "policy"

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        messages: Sequence[list[dict[str, Any]]] | None = None,
    ) -> list[Generation]:
        """One completion per prompt, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (servers, GPU memory)."""
