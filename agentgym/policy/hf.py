"""`HFPolicy`: batched generation with transformers, returning token ids and log-probs,
with prefix KV-cache reuse across multi-turn calls (`agentgym.policy.kv_cache`)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from transformers import (
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from agentgym.policy.base import Generation, Policy, SamplingParams
from agentgym.policy.kv_cache import PrefixKVCache, cache_supported, gather_row, left_padded_cache, weights_version
from agentgym.policy.models import DEFAULT_MODEL, load_model, pad_token_id

__all__ = ["HFPolicy"]


class _Sampler(LogitsProcessor):
    """The whole sampling transform of `SamplingParams`, as one logits processor: the
    temperature, then top-k, then top-p (transformers' own warpers, in their order), and
    a record of log p(chosen token) under the resulting distribution, holding one step's
    distribution (batch x vocab) at a time instead of the (batch x steps x vocab) that
    `output_logits=True` keeps. `generate` runs with no warper of its own, so it samples
    (or takes the argmax of) exactly the distribution recorded here."""

    def __init__(self, params: SamplingParams):
        self.temperature = params.temperature if params.temperature > 0 else 1.0
        self.warpers = []
        if params.temperature > 0 and params.top_k > 0:
            self.warpers.append(TopKLogitsWarper(params.top_k))
        if params.temperature > 0 and params.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(params.top_p))
        self.pending: torch.Tensor | None = None
        self.chosen: list[torch.Tensor] = []

    def _take(self, tokens: torch.Tensor) -> None:
        if self.pending is not None:
            self.chosen.append(self.pending.gather(1, tokens.view(-1, 1)).squeeze(1))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.pending is not None:
            self._take(input_ids[:, -1])
        scores = scores.float() / self.temperature
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        self.pending = torch.log_softmax(scores, dim=-1)
        return scores

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        self._take(last_tokens)
        self.pending = None
        return torch.stack(self.chosen, dim=1)


@contextmanager
def _no_model_defaults(model: Any) -> Iterator[None]:
    """`generate` fills every option it is not given from the model's `generation_config`
    (Qwen2.5-Instruct's sets `repetition_penalty: 1.05`), and those processors would run
    before `_Sampler`: while generating, the model that `generate` runs on (the base model
    under a peft wrapper) holds a blank one, so `SamplingParams` alone define sampling."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    saved = target.generation_config
    target.generation_config = GenerationConfig()
    try:
        yield
    finally:
        target.generation_config = saved


class HFPolicy(Policy):
    """A transformers causal LM as a policy: left-padded batches, sampling or greedy, and
    automatic prefix KV-cache reuse across calls.

    With `prefix_cache` on, each row's keys/values (prompt + completion) are kept after a
    call; a later prompt that extends a kept sequence (the next turn of the same
    conversation) prefills only its new tokens. The interface stays stateless: prompts are
    matched by their tokens, and the cache is dropped when the weights change.

    Args:
        model: a model name (`smollm2-135m`, a Hugging Face id, a local folder, or
            `tiny-random` for tests) or an already loaded `PreTrainedModel`.
        tokenizer: required when `model` is an object.
        dtype: "auto" (bfloat16 on GPU, float32 on CPU), or a torch dtype name.
        device: "cpu", "cuda", ...; default: cuda if available.
        batch_size: most prompts per forward batch (longer lists are split).
        prefix_cache: reuse kept keys/values for prompts that extend an earlier sequence
            (ignored for architectures whose cache cannot be spliced, e.g. sliding windows).
        cache_mb: memory budget of the kept keys/values in MB (least recently used go first).

    Example:
        >>> policy = HFPolicy("smollm2-135m")
        >>> ids = policy.tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
        >>> policy.generate([ids], SamplingParams(max_new_tokens=8, temperature=0))[0].text
    """

    def __init__(
        self,
        model: Any = DEFAULT_MODEL,
        tokenizer: Any = None,
        *,
        dtype: str = "auto",
        device: str | None = None,
        batch_size: int = 16,
        prefix_cache: bool = True,
        cache_mb: float = 4096,
    ):
        if isinstance(model, str):
            self.name = model
            self.model, self.tokenizer = load_model(model, dtype=dtype, device=device)
        else:
            if tokenizer is None:
                raise ValueError("HFPolicy(model=<object>) needs tokenizer=")
            self.name = getattr(model.config, "_name_or_path", type(model).__name__)
            self.model, self.tokenizer = model, tokenizer
        self.batch_size = batch_size
        tok = self.tokenizer
        self.pad_id = pad_token_id(tok)
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {i for i in [*eos, tok.eos_token_id] if i is not None}
        self.prefix_cache = prefix_cache and cache_supported(self.model)
        self.cache = PrefixKVCache(cache_mb)
        self._weights = weights_version(self.model)
        # Prefill of a cache needs no logits but the last position's; older models lack the argument.
        self._logits_arg = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def clear_cache(self) -> None:
        """Drop every kept KV cache (e.g. to free memory between evaluations)."""
        self.cache.clear()

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        messages: Sequence[list[dict[str, Any]]] | None = None,
    ) -> list[Generation]:
        if params.seed is not None:
            torch.manual_seed(params.seed)
        found: list[torch.Tensor | None] = [None] * len(prompts)
        if self.prefix_cache:
            found = self._take_cached(prompts)
        else:  # counted all the same, so a benchmark can compare prefill work with the cache off
            self.cache.stats.misses += len(prompts)
            self.cache.stats.prefilled_tokens += sum(len(p) for p in prompts)
        # Similar lengths together: less padding. Results go back in the caller's order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Generation | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = [list(prompts[i]) for i in chunk]
            if self.prefix_cache:
                gens = self._generate_cached(batch, [found[i] for i in chunk], params)
            else:
                gens = self._generate_plain(batch, params)
            for i, gen in zip(chunk, gens, strict=True):
                out[i] = gen
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ prefix cache

    def _take_cached(self, prompts: Sequence[Sequence[int]]) -> list[torch.Tensor | None]:
        """Each prompt's longest kept prefix, removed from the store: the continuation will
        store a longer entry. Every lookup runs before any removal, so identical prompts in
        one call (k samples of a task) all find it."""
        store = self.cache
        version = weights_version(self.model)
        if version != self._weights:  # the weights were updated: every kept key/value is stale
            store.clear()
            self._weights = version
        found = [store.lookup(p) for p in prompts]
        for hit in found:
            if hit is not None:
                store.discard(hit[0])
        for p, hit in zip(prompts, found, strict=True):
            reused = len(hit[0]) if hit is not None else 0
            store.stats.hits += hit is not None
            store.stats.misses += hit is None
            store.stats.reused_tokens += reused
            store.stats.prefilled_tokens += len(p) - reused
        return [hit[1] if hit is not None else None for hit in found]

    @torch.inference_mode()
    def _prefill(self, seqs: list[list[int]]) -> list[torch.Tensor]:
        """Keys/values of whole sequences (one left-padded forward pass, no sampling)."""
        ids, mask = self._left_pad(seqs)
        width = ids.shape[1]
        device = self.device
        cache = DynamicCache(config=self.model.config.get_text_config(decoder=True))
        # Positions from the mask, as generate computes them, so padding does not shift RoPE.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {"logits_to_keep": 1} if self._logits_arg else {}
        self.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
            **extra,
        )
        return [gather_row(cache, row, torch.arange(width - len(s), width)) for row, s in enumerate(seqs)]

    @torch.inference_mode()
    def _generate_cached(
        self, prompts: list[list[int]], kvs: list[torch.Tensor | None], params: SamplingParams
    ) -> list[Generation]:
        """Generate from kept prefixes: rows without one get theirs from `_prefill` (all but
        the last token), then one `generate` call prefills only each row's new tokens.

        Row layout (width C + N, C = longest kept prefix, N = most new tokens):
        `[pad][kept c][pad][new n]`; the mask is 0 on every pad, so positions (the mask's
        cumulative sum) run 0..c+n-1 over the real tokens exactly as without the cache.
        """
        kvs = list(kvs)
        misses = [r for r, kv in enumerate(kvs) if kv is None and len(prompts[r]) > 1]
        if misses:
            for r, kv in zip(misses, self._prefill([prompts[r][:-1] for r in misses]), strict=True):
                kvs[r] = kv
        kept = [kv.shape[3] if kv is not None else 0 for kv in kvs]
        c_max = max(kept)
        if c_max == 0:  # only one-token prompts: nothing to reuse
            return self._generate_plain(prompts, params)
        n_max = max(len(p) - c for p, c in zip(prompts, kept, strict=True))
        width = c_max + n_max
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, (p, c) in enumerate(zip(prompts, kept, strict=True)):
            # The whole prompt right-aligned: stop strings and logits processors then see the
            # same tail as without the cache. The model reads only the last N columns (the
            # first C are in the cache), and masked columns are never attended to.
            ids[row, width - len(p) :] = torch.as_tensor(p, dtype=torch.long)
            mask[row, c_max - c : c_max] = 1
            mask[row, width - (len(p) - c) :] = 1
        cache = left_padded_cache(kvs, c_max, self.model.config)
        new, logprobs = self._run(ids, mask, params, cache)
        gens = [self._trim(new[row].tolist(), logprobs[row].tolist(), params) for row in range(len(prompts))]
        for row, gen in enumerate(gens):
            # The last sampled token was never fed back, so it has no keys/values yet: the
            # next turn's prompt starts its new tokens with it.
            keep = len(gen.token_ids) - 1
            positions = torch.cat([mask[row].nonzero().squeeze(1), torch.arange(width, width + keep)])
            self.cache.put([*prompts[row], *gen.token_ids[:keep]], gather_row(cache, row, positions))
        return gens

    # ------------------------------------------------------------------ generation

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):  # left padding: generation continues from the right edge
            ids[row, width - len(s) :] = torch.as_tensor(s, dtype=torch.long)
            mask[row, width - len(s) :] = 1
        return ids, mask

    @torch.inference_mode()
    def _generate_plain(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        ids, mask = self._left_pad(prompts)
        new, logprobs = self._run(ids, mask, params)
        return [self._trim(new[row].tolist(), logprobs[row].tolist(), params) for row in range(len(prompts))]

    def _run(
        self, ids: torch.Tensor, mask: torch.Tensor, params: SamplingParams, cache: DynamicCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`model.generate` on a padded batch: the new tokens and their log-probs (on CPU)."""
        recorder = _Sampler(params)
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": sample,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids),
            "logits_processor": LogitsProcessorList([recorder]),
        }
        if sample:  # no warper of generate's own: `_Sampler` applies them
            kwargs.update(temperature=1.0, top_p=1.0, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if cache is not None:
            kwargs["past_key_values"] = cache
        device = self.device
        with _no_model_defaults(self.model):
            seqs = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
        new = seqs[:, ids.shape[1] :]
        logprobs = recorder.finish(new[:, -1]).cpu()
        return new.cpu(), logprobs

    def _trim(self, tokens: list[int], logprobs: list[float], params: SamplingParams) -> Generation:
        """Cut a row at its end: the first end-of-turn token (kept) or the first stop string
        (kept); what follows is padding. Otherwise the row hit max_new_tokens."""
        cut, reason = len(tokens), "length"
        for i, t in enumerate(tokens):
            if t in self.eos_ids:
                cut, reason = i + 1, "stop"
                break
        if params.stop:
            stop_at = self._stop_cut(tokens[:cut], params.stop)
            if stop_at is not None:
                cut, reason = stop_at, "stop"
        tokens, logprobs = tokens[:cut], logprobs[:cut]
        body = tokens[:-1] if tokens and tokens[-1] in self.eos_ids else tokens
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        return Generation(tokens, logprobs, text, reason)

    def _stop_cut(self, tokens: list[int], stops: Sequence[str]) -> int | None:
        """Fewest leading tokens whose text contains a stop string (binary search on decode)."""
        decode = self.tokenizer.decode
        if not any(s in decode(tokens) for s in stops):
            return None
        lo, hi = 1, len(tokens)
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s in decode(tokens[:mid]) for s in stops):
                hi = mid
            else:
                lo = mid + 1
        return lo
