"""`HFPolicy`: batched generation with transformers, returning token ids and log-probs,
with prefix KV-cache reuse across multi-turn calls (`agentgym.policy.kv_cache`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from agentgym.policy.base import Generation, Policy, SamplingParams
from agentgym.policy.decode import Decoder
from agentgym.policy.kv_cache import PrefixKVCache, cache_supported, gather_row, left_padded_cache, weights_version
from agentgym.policy.models import DEFAULT_MODEL, load_model, pad_token_id

__all__ = ["HFPolicy"]


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix every sequence shares."""
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


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
        self.decoder = Decoder(self.model, tok, self.pad_id, {i for i in [*eos, tok.eos_token_id] if i is not None})
        self.prefix_cache = prefix_cache and cache_supported(self.model)
        self.cache = PrefixKVCache(cache_mb)
        self._weights = weights_version(self.model)

    @property
    def eos_ids(self) -> set[int]:
        """The token ids that end a turn."""
        return self.decoder.eos_ids

    @eos_ids.setter
    def eos_ids(self, ids: set[int]) -> None:
        self.decoder.eos_ids = set(ids)

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
        else:
            self.cache.stats.misses += len(prompts)
        # Similar lengths together: less padding. Results go back in the caller's order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Generation | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            gens = self._generate([list(prompts[i]) for i in chunk], [found[i] for i in chunk], params)
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
        for hit in found:
            store.stats.hits += hit is not None
            store.stats.misses += hit is None
            store.stats.reused_tokens += len(hit[0]) if hit is not None else 0
        return [hit[1] if hit is not None else None for hit in found]

    def _prefill_shared(self, seqs: list[list[int]]) -> list[torch.Tensor]:
        """Keys/values of whole sequences, each distinct sequence computed once and the
        prefix they all share (a system prompt, a group's common first prompt) once for
        all of them."""
        distinct = sorted({tuple(s) for s in seqs})
        common = _common_prefix(distinct) if len(distinct) > 1 else 0
        base = self._extend([list(distinct[0][:common])], [None])[0] if common else None
        kv = dict(zip(distinct, self._extend([list(d) for d in distinct], [base] * len(distinct)), strict=True))
        return [kv[tuple(s)] for s in seqs]

    def _extend(self, seqs: list[list[int]], kvs: list[torch.Tensor | None]) -> list[torch.Tensor]:
        """Keys/values of whole sequences, each given those of its first tokens (or None)."""
        todo = [r for r, (s, kv) in enumerate(zip(seqs, kvs, strict=True)) if kv is None or kv.shape[3] < len(s)]
        out = list(kvs)
        if todo:
            new_ids, mask, cache = self._layout([seqs[r] for r in todo], [kvs[r] for r in todo])
            self.decoder.forward(new_ids, mask, cache)
            for row, r in enumerate(todo):
                out[r] = gather_row(cache, row, mask[row].nonzero().squeeze(1))
        return out  # type: ignore[return-value]

    def _layout(
        self, prompts: list[list[int]], kvs: list[torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """A batch that continues kept keys/values: the new tokens (B x N) and a mask over
        `[pad][kept c][pad][new n]` (width C + N, C = longest kept prefix, N = most new
        tokens), with the batched cache of the kept part. The mask is 0 on every pad, so
        positions (its running count) run 0..c+n-1 over the real tokens exactly as in one
        unpadded pass. Counts the new tokens as prefilled."""
        kept = [kv.shape[3] if kv is not None else 0 for kv in kvs]
        c_max = max(kept)
        n_max = max(len(p) - c for p, c in zip(prompts, kept, strict=True))
        new_ids = torch.full((len(prompts), n_max), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), c_max + n_max), dtype=torch.long)
        for row, (p, c) in enumerate(zip(prompts, kept, strict=True)):
            n = len(p) - c
            if n:
                new_ids[row, n_max - n :] = torch.as_tensor(p[c:], dtype=torch.long)
            mask[row, c_max - c : c_max] = 1
            mask[row, c_max + n_max - n :] = 1
        self.cache.stats.prefilled_tokens += sum(len(p) - c for p, c in zip(prompts, kept, strict=True))
        cache = left_padded_cache(kvs, c_max, self.model.config) if c_max else self.decoder.new_cache()
        return new_ids, mask, cache

    # ------------------------------------------------------------------ generation

    def _generate(
        self, prompts: list[list[int]], kvs: list[torch.Tensor | None], params: SamplingParams
    ) -> list[Generation]:
        """Generate for one batch. With the prefix cache on, rows without a kept prefix get
        theirs from `_prefill_shared` (all but the last token, which generation needs to
        feed), and each row's keys/values are kept as it ends: the next turn's prompt
        extends them."""
        on_finish = None
        if self.prefix_cache:
            misses = [r for r, kv in enumerate(kvs) if kv is None and len(prompts[r]) > 1]
            if misses:
                for r, kv in zip(misses, self._prefill_shared([prompts[r][:-1] for r in misses]), strict=True):
                    kvs[r] = kv

            def on_finish(row: int, fed: list[int], kv: torch.Tensor) -> None:
                self.cache.put([*prompts[row], *fed], kv)

        new_ids, mask, cache = self._layout(prompts, kvs)
        return self.decoder.generate(new_ids, mask, params, cache, on_finish)
