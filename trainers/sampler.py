"""The weights rollouts read: the trained model itself, or a copy kept in sync with it.

- On the CPU, synchronous (the default there): the trained model itself; nothing is copied,
  and every figure is what it was before copies existed.
- On a GPU (hf backend), `policy.rollout_dtype: auto` generates from a bf16 copy synced
  after every update: generation reads half the bytes of the fp32 master weights, and its
  matmuls run in bf16 as the training forward's do under autocast.
- `async_steps: 1`: a copy in any case, since the rollouts of step k+1 read the weights of
  before step k's update while that update changes the trained ones.

`version` is the policy version the copy holds: the number of training steps whose updates
its weights have seen. Trajectories record it (`Trajectory.policy_version`).

A log-prob recorded at rollout time keeps its one definition: the log-probability of the
sampled token under the distribution it was drawn from, i.e. under these weights (bf16
where the copy is bf16).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

__all__ = ["Sampler", "rollout_dtype"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def rollout_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The dtype rollouts generate in (`policy.rollout_dtype`), or None for the training
    weights' own: "auto" is bf16 on CUDA and the training weights elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if name not in _DTYPES:
        raise ValueError(f"policy.rollout_dtype must be auto, float32, bfloat16 or float16, got {name!r}")
    return _DTYPES[name]


class Sampler:
    """The module rollouts generate with.

    Args:
        trained: the model being trained.
        dtype: the copy's dtype (None: the trained weights' own).
        separate: keep a copy even when the dtype matches (asynchronous rollouts).

    Example:
        >>> sampler = Sampler(model, torch.bfloat16, separate=False)
        >>> sampler.model is model, sampler.model.dtype
        (False, torch.bfloat16)
        >>> ...optimizer step on model...
        >>> sampler.sync(version=1)   # the copy now holds the updated weights, in bf16
    """

    def __init__(self, trained: Any, dtype: torch.dtype | None = None, separate: bool = False):
        self.trained = trained
        own = next(trained.parameters()).dtype
        self.copied = separate or (dtype is not None and dtype != own)
        self.version = 0
        if not self.copied:
            self.model = trained
            return
        self.model = copy.deepcopy(trained).requires_grad_(False).eval()
        if dtype is not None and dtype != own:
            self.model.to(dtype)
        # Only what training changes is copied at each sync: every weight, or a LoRA adapter.
        self._names = [n for n, p in trained.named_parameters() if p.requires_grad]
        self._mine = dict(self.model.named_parameters())

    @torch.no_grad()
    def sync(self, version: int) -> None:
        """Copy the trained weights into the copy (cast to its dtype); it now holds `version`.
        Weights sharded over the ranks (FSDP2) are gathered whole: every rank calls this."""
        if self.copied:
            # Looked up at each sync: sharding replaces the trained model's parameter objects.
            trained = dict(self.trained.named_parameters())
            for name in self._names:
                src = trained[name]
                if hasattr(src, "full_tensor"):  # a DTensor: this rank's shard, gathered (a collective)
                    src = src.full_tensor()
                self._mine[name].copy_(src)
        self.version = version

    @torch.no_grad()
    def logprobs(self, trajs: list[Any], pad_id: int, temperature: float, chunk: int, micro_batch: int) -> list[Any]:
        """Each trajectory's per-segment token log-probs under the weights this sampler holds,
        by the training forward (right padding, no KV cache; the loss's own function), at
        the generated tokens (0 elsewhere): the behaviour log-probs of asynchronous training,
        exact where the copy has the training weights' dtype."""
        from agentgym.trainers.common import autocast, micro_batches, pad_rows, rows_from_trajectories, token_logprobs

        out: list[list[list[float]]] = [[[] for _ in t.segments] for t in trajs]
        rows = rows_from_trajectories(trajs)
        device = next(self.model.parameters()).device
        for mb in micro_batches(rows, micro_batch):
            with autocast(device):
                logp = token_logprobs(self.model, pad_rows(mb, pad_id).to(device), temperature, chunk)
            for i, r in enumerate(mb):
                out[r.traj_index][r.segment] = logp[i, : len(r.input_ids)].float().cpu().tolist()
        return out

    def eval(self) -> None:
        """The sampler's module in eval mode. A separate copy always is: the trained model's
        mode is left to the update, which may run at the same time."""
        if not self.copied:
            self.model.eval()
