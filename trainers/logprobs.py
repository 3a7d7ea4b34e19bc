"""Token log-probs under the model being trained, computed only where they are used.

The update reads log-probs at the generated tokens alone (a few percent of a multi-turn
row: the rest is the system prompt, the task and the observations), and every row of a
batch usually opens with the same tokens (the system prompt; a GRPO group's G identical
first prompts). So, for a causal LM whose head is a plain projection:

- the LM head and the vocab-wide log-softmax run only at the positions the loss reads
  (`batch.loss_mask`), not at every position: on a 49k vocabulary that is most of the
  memory traffic of a forward pass on the CPU;
- the prefix all rows share runs through the model once, and the rows continue from its
  keys/values (expanded, so gradients from every row flow back into it).

Both are the same arithmetic as the plain forward pass (up to float rounding); other
models take the plain pass.
"""

from __future__ import annotations

from typing import Any

import torch
from agentgym.trainers.distributed import is_sharded
from transformers import DynamicCache

from agentgym.policy.kv_cache import cache_argument

__all__ = ["MIN_SHARED_PREFIX", "token_logprobs"]

#: The fewest shared tokens worth a forward pass of their own.
MIN_SHARED_PREFIX = 16

# Config fields of models whose head is more than a projection (softcapping, scaling).
_HEAD_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "output_multiplier",
    "lm_head_multiplier",
)


def _parts(model: Any) -> tuple[Any, Any] | None:
    """(backbone, LM head) of a causal LM whose logits are `head(backbone(x))`, or None.

    None for a model sharded by FSDP2: its weights are gathered by hooks on the whole
    model's forward (the backbone alone would meet sharded ones), and a shared prefix run
    on its own would make the ranks' numbers of passes differ."""
    if is_sharded(model):
        return None
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not type(inner).__name__.endswith("ForCausalLM"):
        return None
    config = inner.config.get_text_config()
    if any(getattr(config, name, None) is not None for name in _HEAD_TRANSFORMS):
        return None
    backbone = getattr(inner, getattr(inner, "base_model_prefix", ""), None)
    head = inner.get_output_embeddings()
    if backbone is None or backbone is inner or not isinstance(head, torch.nn.Linear):
        return None
    return backbone, head


def _shared_prefix(batch: Any) -> int:
    """How many leading tokens every row shares, leaving each row at least one token of its own."""
    ids, lengths = batch.input_ids, batch.attention_mask.sum(1)
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(0).long()
    shared = int(same.cumprod(0).sum())
    return min(shared, int(lengths.min()) - 1)


def _hidden(backbone: Any, batch: Any) -> torch.Tensor:
    """The backbone's last hidden states (B x T x d), the shared prefix computed once."""
    ids, attn = batch.input_ids, batch.attention_mask
    p = _shared_prefix(batch)
    # Under gradient checkpointing a training forward keeps no cache, so the prefix cannot
    # be shared: every row runs whole.
    flag = (
        "is_activation_checkpointing"
        if hasattr(type(backbone), "is_activation_checkpointing")
        else ("is_gradient_checkpointing")
    )  # transformers 5 renamed it
    checkpointed = bool(getattr(backbone, flag, False)) and backbone.training
    if p < MIN_SHARED_PREFIX or checkpointed:
        return backbone(input_ids=ids, attention_mask=attn, use_cache=False).last_hidden_state
    arg = cache_argument(backbone)
    cache = DynamicCache(config=backbone.config.get_text_config(decoder=True))
    head = backbone(input_ids=ids[:1, :p], attention_mask=attn[:1, :p], use_cache=True, **{arg: cache})
    rows = ids.shape[0]
    shared = DynamicCache(
        [(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1)) for layer in cache.layers],
        config=backbone.config.get_text_config(decoder=True),
    )
    positions = torch.arange(p, ids.shape[1], device=ids.device).expand(rows, -1)
    tail = backbone(input_ids=ids[:, p:], attention_mask=attn, position_ids=positions, use_cache=True, **{arg: shared})
    return torch.cat([head.last_hidden_state.expand(rows, -1, -1), tail.last_hidden_state], dim=1)


def token_logprobs(
    model: Any,
    batch: Any,
    temperature: float = 1.0,
    chunk: int = 256,
    return_hidden: bool = False,
    *,
    every_position: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """log p(token t | tokens < t) under `model` at the positions `batch.loss_mask` marks
    (at every position with `every_position`), 0 elsewhere and at t = 0.

    The logits are divided by the sampling `temperature`, so the result is comparable with
    the rollout-time log-probs. The log-softmax runs `chunk` positions at a time: a
    vocab-sized float32 row is ~200 KB for a 49k vocabulary, and its gradient as much again.
    With `return_hidden`, also the last hidden states (B x T x d) at every position.
    """
    temp = temperature if temperature > 0 else 1.0
    targets = batch.input_ids[:, 1:]
    parts = _parts(model)
    if parts is None:
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            output_hidden_states=return_hidden,
            use_cache=False,
        )
        hidden, head = out.hidden_states[-1] if return_hidden else None, None
        logits = out.logits[:, :-1]
    else:
        backbone, head = parts
        hidden = _hidden(backbone, batch)
    wanted = torch.ones_like(targets, dtype=torch.bool) if every_position else batch.loss_mask[:, 1:] > 0
    rows, cols = wanted.nonzero(as_tuple=True)
    picked = []
    for s in range(0, len(rows), chunk):
        r, c = rows[s : s + chunk], cols[s : s + chunk]
        part = (head(hidden[r, c]) if head is not None else logits[r, c]).float() / temp
        # log_softmax gathered at the target = logit - logsumexp: no full log-prob tensor kept.
        picked.append(part.gather(-1, targets[r, c].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(part, dim=-1))
    values = torch.cat(picked) if picked else targets.new_zeros(0, dtype=torch.float32)
    logp = torch.zeros(targets.shape, dtype=torch.float32, device=targets.device).index_put((rows, cols), values)
    logp = torch.cat([torch.zeros_like(logp[:, :1]), logp], dim=1)
    if return_hidden:
        return logp, hidden
    return logp
