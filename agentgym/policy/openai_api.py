"""`OpenAIPolicy`: any OpenAI-compatible server (vLLM, SGLang, an API) as a policy.

Two APIs:
- "completions" (default): the prompt goes as token ids, so the server sees exactly the
  tokens agentgym rendered; servers that return token ids with the log-probs (vLLM with
  `return_tokens_as_token_ids`) give exact trajectories, others are re-tokenised locally.
- "chat": the conversation goes as messages (for APIs that only take chat); the reply is
  re-tokenised locally, so such trajectories are for evaluation, not training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from agentgym.policy.base import Generation, Policy, SamplingParams
from agentgym.policy.models import ModelNotFoundError, load_tokenizer

__all__ = ["OpenAIPolicy"]


def _served_tokenizer(model: str, tokenizer: str | None) -> Any:
    """The tokenizer named by `tokenizer`, else the one of `model` (the served model's name)."""
    try:
        return load_tokenizer(tokenizer or model)
    except ModelNotFoundError as exc:
        if tokenizer:
            raise
        raise ModelNotFoundError(
            f"policy.tokenizer: no tokenizer loads from the served model's name {model!r} (not an embedded "
            "model, a local folder, or in the Hugging Face cache), and agentgym renders prompts with the served "
            "model's own tokenizer: set policy.tokenizer to its Hugging Face id or a local folder that holds it"
        ) from exc


class OpenAIPolicy(Policy):
    """A policy served behind an OpenAI-compatible HTTP API.

    Args:
        model: the model name the server knows.
        base_url: e.g. "http://127.0.0.1:8000/v1" (default: `$OPENAI_BASE_URL`, else OpenAI's).
        api_key: default `$OPENAI_API_KEY`, else "EMPTY" (local servers ignore it).
        api: "completions" (token ids in) or "chat" (messages in).
        tokenizer: a tokenizer name, folder or object for rendering prompts and counting
            tokens; default: `model`'s. It must be the served model's own tokenizer (the
            prompt goes to the server as its token ids), so a model name whose tokenizer
            cannot be loaded is an error, never a fallback to another model's.
        max_workers: concurrent requests (servers batch them).
        timeout: seconds per request.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        api: Literal["completions", "chat"] = "completions",
        tokenizer: Any = None,
        max_workers: int = 16,
        timeout: float = 120.0,
    ):
        import openai

        if api not in ("completions", "chat"):
            raise ValueError(f'api must be "completions" or "chat", got {api!r}')
        self.name, self.api = model, api
        self.client = openai.OpenAI(
            base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            timeout=timeout,
            max_retries=2,
        )
        if tokenizer is None or isinstance(tokenizer, str):
            tokenizer = _served_tokenizer(model, tokenizer)
        self.tokenizer = tokenizer
        self.pool = ThreadPoolExecutor(max_workers=max_workers)

    def close(self) -> None:
        self.pool.shutdown(wait=False)

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        messages: Sequence[list[dict[str, Any]]] | None = None,
    ) -> list[Generation]:
        if self.api == "chat":
            if messages is None:
                raise ValueError('OpenAIPolicy(api="chat") needs the conversations as messages')
            return list(self.pool.map(lambda m: self._chat(m, params), messages))
        return list(self.pool.map(lambda p: self._complete(p, params), prompts))

    def _common(self, params: SamplingParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.name,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.seed is not None:
            kwargs["seed"] = params.seed
        return kwargs

    def _complete(self, prompt: Sequence[int], params: SamplingParams) -> Generation:
        # Token-id prompts are a vLLM-style server: its sampling extensions are set too, so
        # that it samples by `params` alone, not by the defaults of the model's
        # generation_config.json (a repetition penalty, top-k) that such servers apply.
        extra = {
            "return_tokens_as_token_ids": True,
            "top_k": params.top_k if params.top_k > 0 else -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
        }
        resp = self.client.completions.create(prompt=list(prompt), logprobs=1, extra_body=extra, **self._common(params))
        choice = resp.choices[0]
        lp = choice.logprobs
        ids: list[int] | None = None
        logprobs: list[float] = []
        if lp is not None and lp.token_logprobs:
            logprobs = [float(x or 0.0) for x in lp.token_logprobs]
            if lp.tokens and all(t.startswith("token_id:") for t in lp.tokens):
                ids = [int(t.split(":", 1)[1]) for t in lp.tokens]
        return self._generation(choice.text, choice.finish_reason, ids, logprobs)

    def _chat(self, msgs: list[dict[str, Any]], params: SamplingParams) -> Generation:
        if params.top_k > 0:
            raise ValueError(
                'OpenAIPolicy(api="chat") cannot sample with top_k (no such chat parameter); '
                'use api="completions" with a vLLM-compatible server, or top_k=0'
            )
        resp = self.client.chat.completions.create(messages=msgs, logprobs=True, **self._common(params))
        choice = resp.choices[0]
        logprobs = [c.logprob for c in (choice.logprobs.content or [])] if choice.logprobs else []
        return self._generation(choice.message.content or "", choice.finish_reason, None, logprobs)

    def _generation(self, text: str, finish: str | None, ids: list[int] | None, logprobs: list[float]) -> Generation:
        reason = "length" if finish == "length" else "stop"
        eos = self.tokenizer.eos_token_id
        if ids is None:  # re-tokenise the text (log-probs align only where tokenisations agree)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            logprobs = logprobs[: len(ids)] + [0.0] * max(0, len(ids) - len(logprobs))
            if reason == "stop":
                ids, logprobs = [*ids, eos], [*logprobs, 0.0]
        elif reason == "stop" and (not ids or ids[-1] != eos):
            ids, logprobs = [*ids, eos], [*logprobs, 0.0]  # the server stripped the end-of-turn token
        if ids and ids[-1] == eos:
            text = self.tokenizer.decode(ids[:-1], skip_special_tokens=False) if ids[:-1] else text
        return Generation(ids, logprobs, text, reason)
