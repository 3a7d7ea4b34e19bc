"""Prefix KV-cache reuse for `HFPolicy` (what vLLM calls automatic prefix caching).

In a multi-turn rollout every call's prompt is the previous call's prompt + completion +
a few new tokens (the template's closing tokens and the next observation). Keeping each
sequence's keys and values after a call lets the next call prefill only the new tokens
instead of the whole conversation.

`PrefixKVCache` is the store: entries keyed by their token tuple, looked up by the
longest stored prefix of a prompt, bounded by an LRU over a memory budget, and consumed
when extended. The helpers below move keys/values between the store's per-sequence
tensors (`[layers, 2, kv_heads, length, head_dim]`) and the batched `DynamicCache` that
`model.generate` reads and grows (`[batch, kv_heads, length, head_dim]` per layer).
"""

from __future__ import annotations

import inspect
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

__all__ = [
    "CacheStats",
    "PrefixKVCache",
    "cache_argument",
    "cache_supported",
    "forward_parameters",
    "gather_row",
    "left_padded_cache",
    "weights_version",
]


@dataclass
class CacheStats:
    """Counters of a `PrefixKVCache`, for benchmarks and tests.

    Attributes:
        hits: prompts that found a stored prefix.
        misses: prompts that did not (prefilled in full).
        reused_tokens: prompt tokens whose keys/values came from the store.
        prefilled_tokens: prompt tokens that went through the model.
        evictions: entries dropped by the memory bound.
    """

    hits: int = 0
    misses: int = 0
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    evictions: int = 0


class PrefixKVCache:
    """Per-sequence keys/values, found again by any prompt that extends the sequence.

    Entries are keyed by their full token tuple (a dict compares tuples exactly, so a hash
    collision can never return another sequence's cache). A lookup tries the prompt's
    prefixes at the lengths that are stored, longest first. Entries are used once: a
    sequence's cache is consumed by its continuation, which stores a longer entry.

    Args:
        max_mb: memory budget in MB; the least recently used entries go first. An entry
            larger than the whole budget is not stored.
    """

    def __init__(self, max_mb: float = 4096):
        self.max_bytes = int(max_mb * 2**20)
        self.entries: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        self.lengths: Counter[int] = Counter()
        self.nbytes = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, prompt: Sequence[int]) -> tuple[tuple[int, ...], torch.Tensor] | None:
        """The longest stored entry that is a proper prefix of `prompt` (at least one token
        must stay new: generation needs the last prompt token's logits), or None."""
        n = len(prompt)
        for length in sorted((k for k in self.lengths if k < n), reverse=True):
            key = tuple(prompt[:length])
            kv = self.entries.get(key)
            if kv is not None:
                self.entries.move_to_end(key)
                return key, kv
        return None

    def put(self, tokens: Sequence[int], kv: torch.Tensor) -> None:
        """Store the keys/values of `tokens` (`kv`: `[layers, 2, heads, len(tokens), dim]`)."""
        if kv.shape[3] != len(tokens):
            raise ValueError(f"kv covers {kv.shape[3]} positions but {len(tokens)} tokens were given")
        size = kv.numel() * kv.element_size()
        if size > self.max_bytes or not tokens:
            return
        key = tuple(tokens)
        self.discard(key)
        self.entries[key] = kv
        self.lengths[len(key)] += 1
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            oldest = next(iter(self.entries))
            self.discard(oldest)
            self.stats.evictions += 1

    def discard(self, key: tuple[int, ...]) -> None:
        """Drop one entry if it is stored."""
        kv = self.entries.pop(key, None)
        if kv is None:
            return
        self.nbytes -= kv.numel() * kv.element_size()
        self.lengths[len(key)] -= 1
        if not self.lengths[len(key)]:
            del self.lengths[len(key)]

    def clear(self) -> None:
        """Drop every entry (the counters stay)."""
        self.entries.clear()
        self.lengths.clear()
        self.nbytes = 0


def cache_supported(model: Any) -> bool:
    """Whether prefix reuse is exact for `model`: a decoder whose every layer keeps a plain,
    unbounded `DynamicLayer` (sliding-window, linear-attention or static layers drop or
    recompute positions, so their caches cannot be re-padded and spliced)."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return False
    try:
        cache = DynamicCache(config=config.get_text_config(decoder=True))
    except Exception:  # an architecture DynamicCache cannot describe
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


def forward_parameters(module: Any) -> set[str]:
    """The argument names of `module.forward` (of the base model under a peft wrapper,
    whose own forward does not declare them)."""
    base = module.get_base_model() if hasattr(module, "get_base_model") else module
    return set(inspect.signature(base.forward).parameters)


def cache_argument(module: Any) -> str:
    """The name under which `module.forward` (a model, its backbone, or a peft wrapper's
    base model) takes a KV cache: `cache` from transformers 5.2x on, `past_key_values` before."""
    params = forward_parameters(module)
    return "cache" if "cache" in params and "past_key_values" not in params else "past_key_values"


def weights_version(model: Any) -> tuple[int, int]:
    """A fingerprint that changes whenever the weights do: in-place updates (optimizer
    steps, `load_state_dict`) bump each tensor's version counter; a new model object
    changes its id. Cached keys/values are stale after either."""
    return id(model), sum(p._version for p in model.parameters())


def left_padded_cache(kvs: Sequence[torch.Tensor | None], width: int, config: Any) -> DynamicCache:
    """A batched `DynamicCache` of `width` positions from per-row entries, each right-aligned
    (left padding, zeros; the attention mask hides them). None rows are all padding."""
    ref = next(kv for kv in kvs if kv is not None)
    layers, _, heads, _, dim = ref.shape
    buf = ref.new_zeros((layers, 2, len(kvs), heads, width, dim))
    for row, kv in enumerate(kvs):
        if kv is not None and kv.shape[3]:
            buf[:, :, row, :, width - kv.shape[3] :] = kv
    return DynamicCache([(buf[i, 0], buf[i, 1]) for i in range(layers)], config=config.get_text_config(decoder=True))


def gather_row(cache: DynamicCache, row: int, positions: torch.Tensor) -> torch.Tensor:
    """One row's keys/values at `positions` (its real tokens, in order), as a compact
    `[layers, 2, heads, len(positions), dim]` tensor that owns its memory."""
    positions = positions.to(cache.layers[0].keys.device)
    return torch.stack(
        [
            torch.stack([layer.keys[row].index_select(1, positions), layer.values[row].index_select(1, positions)])
            for layer in cache.layers
        ]
    )
