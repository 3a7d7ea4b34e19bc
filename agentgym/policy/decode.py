"""The decoding loop of `HFPolicy`: forward passes over a KV cache, sampling exactly the
distribution `SamplingParams` define, and recording its log-probs.

transformers' `generate` keeps every row of a batch until the last row is done: a row
that wrote its `</answer>` at token 7 of a 12-token budget is computed five more times
for nothing, and in a multi-turn rollout most rows finish early. This loop drops a row
from the batch (and its keys/values from the cache) as soon as it ends, so each forward
pass costs what the unfinished rows need. A row's kept keys/values are handed to
`on_finish` before it leaves, for the prefix cache.

Rows end at the first end-of-turn token or at the first token whose text completes a
stop string (both kept), or at `max_new_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, TopKLogitsWarper, TopPLogitsWarper

from agentgym.policy.base import Generation, SamplingParams
from agentgym.policy.kv_cache import cache_argument, forward_parameters, gather_row

__all__ = ["Decoder", "Sampler"]


class Sampler:
    """The whole sampling transform of `SamplingParams` on one step's logits: the
    temperature, then top-k, then top-p (transformers' own warpers, in their order). It
    returns the tokens and their log-probabilities under exactly the distribution they
    were drawn from (greedy: the argmax, recorded at temperature 1)."""

    def __init__(self, params: SamplingParams):
        self.greedy = params.temperature <= 0
        self.temperature = 1.0 if self.greedy else params.temperature
        self.warpers: list[Any] = []
        if not self.greedy and params.top_k > 0:
            self.warpers.append(TopKLogitsWarper(params.top_k))
        if not self.greedy and params.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(params.top_p))

    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = logits.float() / self.temperature
        for warp in self.warpers:  # they read only the scores; input_ids are unused
            scores = warp(None, scores)
        logp = torch.log_softmax(scores, dim=-1)
        # Sampling draws as transformers' `generate` does.
        tokens = (
            scores.argmax(dim=-1)
            if self.greedy
            else torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        )
        return tokens, logp.gather(1, tokens.view(-1, 1)).squeeze(1)


@dataclass
class _Row:
    """One prompt's state while it decodes."""

    index: int  # position in the caller's batch
    tokens: list[int]
    logprobs: list[float]


class Decoder:
    """Forward passes of one causal LM, as the policy needs them.

    Args:
        model: a transformers causal LM (or a peft wrapper of one).
        tokenizer: decodes completions and finds stop strings.
        pad_id: the id written in padding columns (never attended to).
        eos_ids: end-of-turn token ids.
    """

    def __init__(self, model: Any, tokenizer: Any, pad_id: int, eos_ids: set[int]):
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = pad_id
        self.eos_ids = eos_ids
        # Only the last position's logits are needed; older models lack the argument.
        self._logits_arg = "logits_to_keep" in forward_parameters(model)
        self._cache_arg = cache_argument(model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.model.config.get_text_config(decoder=True))

    @torch.inference_mode()
    def forward(self, new_ids: torch.Tensor, mask: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        """Run `new_ids` (B x N) after the keys/values `cache` holds and return the last
        position's logits. `mask` (B x (cached + N)) marks the real tokens of every column,
        cached or new; positions are its running count, as `generate` computes them, so
        padding never shifts RoPE. `cache` grows by the N columns."""
        n = new_ids.shape[1]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -n:]
        device = self.device
        extra = {"logits_to_keep": 1} if self._logits_arg else {}
        out = self.model(
            input_ids=new_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            **{self._cache_arg: cache},
            **extra,
        )
        return out.logits[:, -1]

    @torch.inference_mode()
    def generate(
        self,
        new_ids: torch.Tensor,
        mask: torch.Tensor,
        params: SamplingParams,
        cache: DynamicCache | None = None,
        on_finish: Callable[[int, list[int], torch.Tensor], None] | None = None,
    ) -> list[Generation]:
        """Complete every row of a left-padded batch: `new_ids` (B x N) are the prompt
        columns `cache` (if given) does not hold, `mask` (B x (cached + N)) marks the real
        tokens of all columns.

        `on_finish(row, fed, kv)`, if given, receives each row's keys/values as it ends:
        `kv` (`[layers, 2, heads, length, dim]`) covers its real prompt tokens and `fed`,
        the generated tokens that went back through the model (all but the last).
        """
        cache = cache if cache is not None else self.new_cache()
        if params.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {params.max_new_tokens}")
        sampler = Sampler(params)
        rows = [_Row(i, [], []) for i in range(new_ids.shape[0])]
        out: list[Generation | None] = [None] * len(rows)
        logits = self.forward(new_ids, mask, cache)
        for step in range(params.max_new_tokens):
            tokens, logprobs = sampler(logits)
            ended = []
            for k, (row, token, logprob) in enumerate(zip(rows, tokens.tolist(), logprobs.tolist(), strict=True)):
                row.tokens.append(token)
                row.logprobs.append(logprob)
                reason = self._finished(row.tokens, params.stop)
                if reason is None and step + 1 == params.max_new_tokens:
                    reason = "length"
                if reason is None:
                    continue
                out[row.index] = self._generation(row, reason)
                ended.append(k)
                if on_finish is not None:
                    on_finish(row.index, row.tokens[:-1], gather_row(cache, k, mask[k].nonzero().squeeze(1)))
            if len(ended) == len(rows):
                break
            if ended:  # the rows that go on, and their keys/values only
                keep = torch.tensor([k for k in range(len(rows)) if k not in ended], dtype=torch.long)
                for layer in cache.layers:
                    layer.keys = layer.keys.index_select(0, keep.to(layer.keys.device))
                    layer.values = layer.values.index_select(0, keep.to(layer.values.device))
                rows = [rows[k] for k in keep.tolist()]
                mask, tokens = mask[keep], tokens[keep.to(tokens.device)]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            logits = self.forward(tokens.view(-1, 1), mask, cache)
        return out  # type: ignore[return-value]

    def _finished(self, tokens: list[int], stops: Sequence[str]) -> str | None:
        """ "stop" if the last token ends the turn or completes a stop string."""
        if tokens[-1] in self.eos_ids:
            return "stop"
        if stops and any(s in self.tokenizer.decode(tokens) for s in stops):
            return "stop"
        return None

    def _generation(self, row: _Row, reason: str) -> Generation:
        body = row.tokens[:-1] if row.tokens[-1] in self.eos_ids else row.tokens
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        return Generation(list(row.tokens), list(row.logprobs), text, reason)  # type: ignore[arg-type]
