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

Sharded (FSDP2, `hardware.fsdp: true`, or an accelerate config with `use_fsdp`): torch's
`fully_shard` splits every decoder layer's weights, gradients and AdamW state over the
ranks (`Dist.shard`), for full fine-tuning beyond one device's memory. Each forward then
gathers a layer's weights from every rank and each backward reduce-scatters its gradients,
so every rank must run the same passes in the same order: the trainers pad a rank's short
list of micro-batches with zero-weight ones (`Trainer.batches`), and gradients are summed
(not averaged) in the reduce-scatter, so the update is still the single-process update on
the union of the ranks' rollouts. Rollouts, evaluations and the final model read a whole
copy gathered after each update (trainers/sampler.py). FSDP2 is called directly, not
through accelerate's `prepare`: accelerate runs FSDP on GPUs only (on the CPU it falls back
to DDP, 1.16), and the loop does its own backward passes.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import torch

__all__ = ["Dist", "is_sharded", "load_whole_state", "whole_state"]

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

    def __init__(
        self,
        world: int = 1,
        rank: int = 0,
        local_rank: int = 0,
        device: torch.device | None = None,
        sharded: bool = False,
    ):
        self.world, self.rank, self.local_rank, self.device = world, rank, local_rank, device
        self.sharded = sharded and world > 1  # FSDP2: the trained weights are split over the ranks

    @classmethod
    def from_env(cls, cpu: bool = False, shard: bool = False) -> Dist:
        """The ranks the launcher started (WORLD_SIZE > 1), with the process group open; a
        single process otherwise, without initialising anything.

        Args:
            cpu: train on the CPU (gloo) even where CUDA is available.
            shard: shard the model over the ranks (FSDP2); also when the launcher's accelerate
                config asks for FSDP (ACCELERATE_USE_FSDP=true).
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
        shard = shard or os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
        return cls(state.num_processes, state.process_index, state.local_process_index, state.device, shard)

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

    def max(self, values: Sequence[float]) -> list[float]:
        """`values`' element-wise maximum over the ranks (float64), one all-reduce."""
        return self._all_reduce(values, "MAX")

    def shard(self, model: torch.nn.Module, bf16: bool = False) -> torch.nn.Module:
        """FSDP2 over every rank: each decoder layer (the model's `_no_split_modules`) a unit,
        then the rest; gradients summed in the reduce-scatter, as `all_reduce_grads` sums them.
        With `bf16`, the forward and backward run on bf16 gathers of the fp32 master weights,
        gradients reduced in fp32."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(self._comm_device().type, (self.world,))
        kwargs: dict[str, Any] = {"mesh": mesh}
        if bf16:
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        names = set(getattr(model, "_no_split_modules", None) or [])
        layers = [m for m in model.modules() if type(m).__name__ in names]
        if not layers:
            raise ValueError(f"{type(model).__name__} names no decoder layer class (_no_split_modules) to shard by")
        for layer in layers:
            fully_shard(layer, **kwargs)
        fully_shard(model, **kwargs)
        for m in model.modules():
            if hasattr(m, "set_gradient_divide_factor"):
                m.set_gradient_divide_factor(1.0)
                m.set_force_sum_reduction_for_comms(True)  # gloo has no PREMUL_SUM: a plain sum
        return model

    def full_states(
        self, model: torch.nn.Module, modules: dict[str, torch.nn.Module], optimizer: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The sharded model's whole state dict and its optimizer's (AdamW's moments of every
        weight, keyed by name), on the main rank's CPU; {} on the others. A collective: every
        rank calls it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        whole = torch.nn.ModuleDict({"model": model, **modules})  # the optimizer's every parameter
        return whole_state(model), get_optimizer_state_dict(whole, optimizer, options=options)

    def load_full_states(
        self,
        model: torch.nn.Module,
        modules: dict[str, torch.nn.Module],
        optimizer: Any,
        model_state: dict[str, Any] | None,
        optimizer_state: dict[str, Any] | None,
    ) -> None:
        """Restore what `full_states` gave (read from a checkpoint by every rank): each rank
        keeps its shards."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if model_state is not None:
            load_whole_state(model, model_state)
        if optimizer_state is not None:
            whole = torch.nn.ModuleDict({"model": model, **modules})
            set_optimizer_state_dict(whole, optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True))

    def sum(self, values: Sequence[float]) -> list[float]:
        """`values` summed element-wise over the ranks (float64), one all-reduce."""
        return self._all_reduce(values, "SUM")

    def _all_reduce(self, values: Sequence[float], op: str) -> list[float]:
        if not self.enabled:
            return [float(v) for v in values]
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
        return t.tolist()

    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients of `params` over the ranks, in place.

        A parameter without a gradient on some rank (it ran no micro-batch) counts zeros
        there; one without a gradient on every rank keeps none, so that the optimizer skips
        it exactly as a single process would. Sharded, the backward passes have summed them.
        """
        if not self.enabled:
            return
        import torch.distributed as dist
        from torch.distributed.tensor import DTensor

        # Sharded weights had theirs summed by the backward's reduce-scatter; the rest (a
        # value head) are summed here.
        params = [p for p in params if not isinstance(p, DTensor)]
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


def is_sharded(module: Any) -> bool:
    """Whether `module` is sharded by FSDP2 (`Dist.shard`)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def whole_state(module: torch.nn.Module) -> dict[str, Any]:
    """A sharded module's whole state dict on the main rank's CPU ({} on the others). A
    collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_whole_state(module: torch.nn.Module, state: dict[str, Any]) -> None:
    """Load a whole state dict (every rank holds it) into a sharded module: each rank keeps its shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True))


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
