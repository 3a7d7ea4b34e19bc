"""The KL term's reference policy: the policy RL starts from, frozen.

With a warm start, RL starts from the warm-started weights, so the reference is captured
after it (`Reference.capture`): the KL measures how far RL moved, and is 0 at the first
update. Without one, it is the model as built.

- Full fine-tuning: a frozen copy of the model; bf16 on a GPU (`dtype`), where the
  training forward's matmuls run in bf16 under autocast anyway: never a second fp32 copy.
- LoRA: a frozen copy of the adapter's weights (the base is frozen and shared); the
  reference forward swaps them into the adapter and back (`Reference.active`). The same
  adapter goes on training, so RL continues exactly from the warm start.

Resume: a reference captured after a warm start is written once per run
(`checkpoints/reference.pt`) and hard-linked into every checkpoint, so each checkpoint
holds what it needs; a reference that is the model as built needs nothing, the resumed
run builds the same model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from agentgym.trainers.distributed import is_sharded, load_whole_state, whole_state

__all__ = ["Reference"]


class Reference:
    """pi_ref for the KL term of `model` (full or a peft LoRA model).

    Example:
        >>> ref = Reference(model)       # the model as built
        >>> ...warm start...
        >>> ref.capture()                # now: the warm-started policy
        >>> with ref.active() as module:
        ...     ref_logp = token_logprobs(module, batch)
    """

    def __init__(self, model: Any, dtype: torch.dtype | None = None):
        self.model = model
        self.dtype = dtype  # of a full copy (None: the model's own)
        self.lora = hasattr(model, "disable_adapter")
        self.copy: Any = None
        self.adapter: dict[str, torch.Tensor] = {}
        self.initial = True  # the model as built (rebuilt identically on resume)
        self.capture(initial=True)

    def capture(self, initial: bool = False) -> None:
        """Freeze the model's current weights as the reference."""
        if self.lora:
            self.adapter = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        elif self.copy is None:
            self.copy = copy.deepcopy(self.model).eval().requires_grad_(False)
            if self.dtype is not None:
                self.copy.to(self.dtype)
        else:
            self.copy.load_state_dict(self.model.state_dict())
        self.initial = initial

    @contextmanager
    def active(self) -> Iterator[Any]:
        """The module whose forward is pi_ref (LoRA: the model, its adapter swapped for the
        reference's until the block ends)."""
        if not self.lora:
            yield self.copy
            return
        params = dict(self.model.named_parameters())
        current = {n: params[n].detach().clone() for n in self.adapter}
        with torch.no_grad():
            for n, t in self.adapter.items():
                params[n].copy_(t)
        try:
            yield self.model
        finally:
            with torch.no_grad():
                for n, t in current.items():
                    params[n].copy_(t)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The reference's weights; a sharded copy's gathered whole onto the main rank's CPU
        ({} elsewhere; a collective: every rank calls it)."""
        if self.lora:
            return dict(self.adapter)
        return whole_state(self.copy) if is_sharded(self.copy) else self.copy.state_dict()

    def save(self, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> Path | None:
        """Write the reference (`state`, when already taken) when a resumed run could not
        rebuild it (it was captured after a warm start); the path written, or None."""
        if self.initial:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(state if state is not None else self.state_dict(), tmp)
        tmp.replace(path)
        return path

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a reference from its `state_dict` (a checkpoint's reference.pt)."""
        if self.lora:
            self.adapter = {n: t.to(self.adapter[n].device) for n, t in state.items()}
        elif is_sharded(self.copy):
            load_whole_state(self.copy, state)
        else:
            self.copy.load_state_dict(state)
        self.initial = False
