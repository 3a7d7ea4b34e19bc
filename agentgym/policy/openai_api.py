"""`OpenAIPolicy`: any OpenAI-compatible server (vLLM, SGLang, an API) as a policy.

Two APIs:
- "completions" (default): the prompt goes as token ids, so the server sees exactly the
  tokens agentgym rendered; servers that return token ids with the log-probs (vLLM with
  `return_tokens_as_token_ids`) give exact trajectories, others are re-tokenised locally.
  Servers that take only text prompts (`transformers serve`) get the rendered text
  (`prompt="text"`, or `"auto"`, which switches once the server refuses token ids).
- "chat": the conversation goes as messages (for APIs that only take chat); the reply is
  re-tokenised locally, so such trajectories are for evaluation, not training.

Re-tokenised replies are marked (`Generation.meta["retokenized"]`, then
`Trajectory.retokenized`): their tokens are the local tokenizer's reading of the text,
not necessarily what the server sampled. A request the server refuses is a
`PolicyServerError` that gives the server's own reason in one line.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from agentgym.errors import UserError
from agentgym.policy.base import Generation, Policy, SamplingParams
from agentgym.policy.models import ModelNotFoundError, load_tokenizer

__all__ = ["OpenAIPolicy", "PolicyServerError"]


class PolicyServerError(UserError, RuntimeError):
    """The policy's server refused a request or could not be reached; the message says
    which server, its status and its own reason."""


def _detail(exc: Any) -> str:
    """The server's own reason in an `openai.APIStatusError`."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if value:
                return " ".join(str(value).split())
    return " ".join(str(getattr(exc, "message", exc)).split())


#: vLLM's sampling fields that pin what a server would otherwise take from the model's
#: generation_config.json; servers that do not know them (`transformers serve`) refuse them.
_EXTENSIONS = ("top_k", "min_p", "repetition_penalty")


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
        prompt: completions API: "token_ids" (exact), "text" (the rendered prompt, for
            servers that take only text; replies re-tokenised), or "auto": token ids until
            the server refuses them, then text. "auto" also stops sending vLLM's sampling
            fields (top_k, min_p, repetition_penalty) to a server that refuses them, with
            a warning (that server then samples with its own defaults for them).
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
        prompt: Literal["auto", "token_ids", "text"] = "auto",
    ):
        import openai

        if api not in ("completions", "chat"):
            raise ValueError(f'api must be "completions" or "chat", got {api!r}')
        if prompt not in ("auto", "token_ids", "text"):
            raise ValueError(f'prompt must be "auto", "token_ids" or "text", got {prompt!r}')
        self.name, self.api, self.prompt = model, api, prompt
        self.send_ids = prompt != "text"
        self.send_extensions = True
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self._lock = threading.Lock()
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

    def _request(self, send: Any) -> Any:
        """`send(ids, extensions)`, with the server's refusals adapted to (auto mode) or
        reported in one line. Each adaptation happens once: a request is retried only when
        it was sent in a way the server has just been found to refuse."""
        import openai

        while True:
            ids, extensions = self.send_ids, self.send_extensions
            try:
                return send(ids, extensions)
            except openai.APIStatusError as exc:
                if not self._adapt(exc, ids, extensions):
                    raise PolicyServerError(
                        f"policy.base_url={self.base_url}: the server refused the request for model {self.name!r} "
                        f"({exc.status_code}: {_detail(exc)})"
                    ) from None
            except openai.APIConnectionError as exc:
                raise PolicyServerError(
                    f"policy.base_url={self.base_url}: cannot reach the server ({_detail(exc)}): is it running?"
                ) from None

    def _adapt(self, exc: Any, sent_ids: bool, sent_extensions: bool) -> bool:
        """Whether a refusal is one "auto" works around: token-id prompts, or vLLM's
        sampling fields. The first such refusal switches what is sent (and says so)."""
        detail = _detail(exc).lower()
        if self.prompt != "auto" or exc.status_code not in (400, 422):
            return False
        if sent_ids and ("prompt" in detail or "return_tokens_as_token_ids" in detail):
            flag, what = (
                "send_ids",
                "token-id prompts; sending the rendered text from now on (replies are re-tokenised)",
            )
        elif sent_extensions and any(name in detail for name in _EXTENSIONS):
            flag = "send_extensions"
            what = f"vLLM's sampling fields ({', '.join(_EXTENSIONS)}); it samples with its own defaults for them"
        else:
            return False
        with self._lock:  # requests run on several threads: the first refusal switches, the others retry
            first = getattr(self, flag)
            setattr(self, flag, False)
        if first:
            print(
                f"agentgym: the server at {self.base_url} refuses {what} ({_detail(exc)})", file=sys.stderr, flush=True
            )
        return True

    def _complete(self, prompt: Sequence[int], params: SamplingParams) -> Generation:
        def send(ids: bool, extensions: bool) -> Any:
            # Token-id prompts are a vLLM-style server: its sampling fields are set too, so
            # that it samples by `params` alone, not by the defaults of the model's
            # generation_config.json (a repetition penalty, top-k) that such servers apply.
            extra: dict[str, Any] = {"return_tokens_as_token_ids": True} if ids else {}
            if extensions:
                extra.update(top_k=params.top_k if params.top_k > 0 else -1, min_p=0.0, repetition_penalty=1.0)
            elif params.top_k > 0:
                raise PolicyServerError(f"policy.base_url={self.base_url}: the server takes no top_k; use top_k=0")
            body = list(prompt) if ids else self.tokenizer.decode(list(prompt), skip_special_tokens=False)
            return self.client.completions.create(prompt=body, logprobs=1, extra_body=extra, **self._common(params))

        resp = self._request(send)
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
        resp = self._request(
            lambda ids, extensions: self.client.chat.completions.create(
                messages=msgs, logprobs=True, **self._common(params)
            )
        )
        choice = resp.choices[0]
        logprobs = [c.logprob for c in (choice.logprobs.content or [])] if choice.logprobs else []
        return self._generation(choice.message.content or "", choice.finish_reason, None, logprobs)

    def _generation(self, text: str, finish: str | None, ids: list[int] | None, logprobs: list[float]) -> Generation:
        reason = "length" if finish == "length" else "stop"
        eos = self.tokenizer.eos_token_id
        retokenized = ids is None
        if ids is None:  # re-tokenise the text (log-probs align only where tokenisations agree)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            logprobs = logprobs[: len(ids)] + [0.0] * max(0, len(ids) - len(logprobs))
            if reason == "stop":
                ids, logprobs = [*ids, eos], [*logprobs, 0.0]
        elif reason == "stop" and (not ids or ids[-1] != eos):
            ids, logprobs = [*ids, eos], [*logprobs, 0.0]  # the server stripped the end-of-turn token
        if ids and ids[-1] == eos:
            text = self.tokenizer.decode(ids[:-1], skip_special_tokens=False) if ids[:-1] else text
        return Generation(ids, logprobs, text, reason, meta={"retokenized": True} if retokenized else {})
