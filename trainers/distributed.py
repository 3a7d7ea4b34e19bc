"""Data-parallel training: one process per GPU (or per CPU slot), each collecting its share
of a step's rollouts, all holding the same weights and taking the same optimizer steps.

    accelerate launch --num_processes 4 -m agentgym.cli train configs/search_grpo.yaml
    torchrun --nproc_per_node 4 -m agentgym.cli train configs/search_grpo.yaml

The launcher sets WORLD_SIZE, RANK and LOCAL_RANK; accelerate's `PartialState` opens the
process group (NCCL with one GPU per local rank, gloo on the CPU). Without WORLD_SIZE (a
plain `agentgym train`) nothing is initialised and every collective returns its input.

This is the only module of the trainers that talks to torch.distributed. It does not wrap
the model in DDP: ranks run different numbers of micro-batches (their rollouts differ in
length), which would leave DDP's per-backward all-reduces unmatched; gradients are summed
once per optimizer step instead (`all_reduce_grads`).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import torch

__all__ = ["Dist"]

#: How long a rank waits in a collective. The main rank alone runs the warm start and the
#: evaluations while the others wait, which can take far longer than torch's default
#: (10 minutes for NCCL).
TIMEOUT = timedelta(hours=3)

#: Gradients are summed in flat buckets of at most this many elements (one all-reduce per
#: bucket, not per tensor; 32M float32 elements = 128 MB of extra memory at most).
BUCKET = 1 << 25


class Dist:
    """The process's place among the data-parallel ranks, and the few collectives training needs.

    Attributes:
        world: number of processes (1: not distributed).
        rank: this process's index in [0, world).
        local_rank: its index on this machine (the GPU it uses).
        device: the device this rank trains on; None when not distributed (the config decides).

    Example:
        >>> dist = Dist()  # a single process: every collective is the identity
        >>> dist.sum([2.0, 3]), dist.all_gather_object("x"), dist.is_main
        ([2.0, 3.0], ['x'], True)
    """

    def __init__(self, world: int = 1, rank: int = 0, local_rank: int = 0, device: torch.device | None = None):
        self.world, self.rank, self.local_rank, self.device = world, rank, local_rank, device

    @classmethod
    def from_env(cls, cpu: bool = False) -> Dist:
        """The ranks the launcher started (WORLD_SIZE > 1), with the process group open; a
        single process otherwise, without initialising anything.

        Args:
            cpu: train on the CPU (gloo) even where CUDA is available.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        from accelerate import PartialState

        cpu = cpu or not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
        # cpu=True is what makes accelerate open a gloo group (without it, a CPU-only
        # machine gets no process group at all); on CUDA it picks NCCL and sets the device
        # to cuda:LOCAL_RANK.
        state = PartialState(cpu=cpu, backend="gloo" if cpu else None, timeout=TIMEOUT)
        if state.num_processes != world:
            raise RuntimeError(
                f"WORLD_SIZE={world} but accelerate opened a group of {state.num_processes} processes: "
                "launch with `accelerate launch` or `torchrun`"
            )
        atexit.register(state.destroy_process_group)
        return cls(state.num_processes, state.process_index, state.local_process_index, state.device)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """The rank that logs, checkpoints, evaluates and saves the final model."""
        return self.rank == 0

    def seed(self, base: int) -> int:
        """A seed for this rank from `base`: `base` itself on rank 0 (a single process draws
        what it always drew), a different reproducible one on every other rank."""
        if self.rank == 0:
            return base
        return int(np.random.SeedSequence([base % 2**63, self.rank]).generate_state(1, np.uint64)[0] % 2**63)

    # ------------------------------------------------------------------ collectives

    def _comm_device(self) -> torch.device:
        # NCCL moves CUDA tensors only; gloo CPU tensors.
        return self.device if self.device is not None and self.device.type == "cuda" else torch.device("cpu")

    def sum(self, values: Sequence[float]) -> list[float]:
        """`values` summed element-wise over the ranks (float64), one all-reduce."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return t.tolist()

    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients of `params` over the ranks, in place.

        A parameter without a gradient on some rank (it ran no micro-batch) counts zeros
        there; one without a gradient on every rank keeps none, so that the optimizer skips
        it exactly as a single process would.
        """
        if not self.enabled:
            return
        import torch.distributed as dist

        params = list(params)
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=self._comm_device())
        dist.all_reduce(has)
        live = [p for p, n in zip(params, has.tolist(), strict=True) if n > 0]
        for p in live:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        for bucket in _buckets(live):
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])
            dist.all_reduce(flat)
            offset = 0
            for p in bucket:
                n = p.grad.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
                offset += n

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (picklable), in rank order."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast_params(self, module: torch.nn.Module) -> None:
        """Copy rank 0's trainable parameters (requires_grad) of `module` to every rank."""
        if not self.enabled:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for p in module.parameters():
                if p.requires_grad:
                    dist.broadcast(p.data, src=0)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if not self.enabled:
            return
        import torch.distributed as dist

        if self.device is not None and self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()


def _buckets(params: list[torch.nn.Parameter]) -> list[list[torch.nn.Parameter]]:
    """Consecutive parameters of one gradient dtype and device, up to `BUCKET` elements a bucket."""
    buckets: list[list[torch.nn.Parameter]] = []
    size = 0
    for p in params:
        kind = (p.grad.dtype, p.grad.device)
        if not buckets or size + p.numel() > BUCKET or kind != (buckets[-1][0].grad.dtype, buckets[-1][0].grad.device):
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += p.numel()
    return buckets
