"""The training loop every algorithm shares: rollouts at the curriculum's horizon, one
update, metrics, evaluation, checkpoints and exact resume.

An algorithm subclasses `Trainer` and implements `update(trajectories, horizon)`; the loop
(`Trainer.train`) is one template method that reads top to bottom:

    begin:       resume, or warm start (once) -> evaluate
    run_step:    horizon -> rollouts -> update -> log (evaluate when due) -> checkpoint when due
    finish:      checkpoint -> evaluate -> the trained model

With a compute budget (`compute.total`, trainers/compute.py) the run lasts until the
budget is used, not `steps` steps: it ends at the step boundary where the budget is reached,
its LR schedule and curriculum follow the fraction used, and it evaluates (and keeps the
checkpoint) where the fraction crosses each of `compute.eval_at`.

SIGINT or SIGTERM during the steps ends the run at the next step boundary with a checkpoint
(`Trainer.stop`), from which `resume=true` continues exactly.

Rollouts generate with `Trainer.sampler` (trainers/sampler.py): the trained model itself, or a
copy synced after each update (bf16 on a GPU). With `async_steps: 1`, step k+1's rollouts run
in a background thread while step k's update runs, sampled by the weights of before that
update (one policy version stale, never more); the update's ratio then compares with those
weights' log-probs, recomputed by the training forward on the copy before it is synced (exact:
the ratio's reference is the policy that sampled). A checkpoint holds the next step's rollouts
(`pending.pt`), so that a resumed run trains on the same batches. `async_steps: 0` is the loop
as it always was.

Under `accelerate launch` or `torchrun` (see `trainers/distributed.py`) every rank runs this
same loop on its share of each step's tasks; gradients and update statistics are summed
over the ranks, so every rank takes the same optimizer step, and the rollout metrics come
from the whole step's trajectories, so the curriculum decides the same on every rank. The
main rank alone logs, checkpoints, evaluates and saves the final model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import shutil
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from agentgym.trainers.checkpoint import (
    apply_checkpoint,
    link_or_copy,
    newest_intact_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from agentgym.trainers.common import (
    Row,
    autocast,
    build_optimizer,
    build_trainable_model,
    clip_and_step,
    micro_batches,
    pad_rows,
    token_logprobs,
)
from agentgym.trainers.compute import ComputeMeter, compute_cost
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.curriculum import Curriculum
from agentgym.trainers.distributed import Dist
from agentgym.trainers.metrics import MetricsLogger, batch_metrics
from agentgym.trainers.reference import Reference
from agentgym.trainers.sampler import Sampler, rollout_dtype
from tqdm import tqdm

from agentgym.checks import check_env, check_output_dir
from agentgym.config import ConfigError, EnvConfig, EvalConfig, SamplingConfig, to_dict
from agentgym.policy.models import check_model, pad_token_id
from agentgym.registration import env_tasks
from agentgym.rollout import (
    EpisodeSpec,
    RolloutPool,
    RolloutStats,
    env_maker,
    episode_seed,
    rollout_settings,
    warn_aborted,
)
from agentgym.trajectory import Trajectory, save_trajectories

__all__ = ["MetricsLogger", "Trainer", "batch_metrics"]  # the first and last live in trainers/metrics.py

#: The signals that stop a run cleanly: Ctrl-C, and what schedulers (SLURM, Kubernetes) send before killing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclasses.dataclass
class Pending:
    """A step's rollouts collected ahead of it (async_steps), with their log-probs under the
    weights that sampled them (per trajectory, per segment) and the generation time."""

    step: int
    horizon: int
    trajs: list[Trajectory]
    behaviour: list[list[list[float]]]
    generate_seconds: float

    def to_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "horizon": self.horizon,
            "trajectories": [t.to_dict() for t in self.trajs],
            "behaviour": self.behaviour,
            "generate_seconds": self.generate_seconds,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Pending:
        trajs = [Trajectory.from_dict(d) for d in state["trajectories"]]
        return cls(state["step"], state["horizon"], trajs, state["behaviour"], state["generate_seconds"])


class Trainer(ABC):
    """Trains `cfg.policy.model` on `cfg.env` with rollouts from the model itself.

    Args:
        cfg: the whole training config.
        model, tokenizer: an already built model to train (tests); default: from `cfg`.
    """

    #: The algorithm's settings (a dataclass): the config section named after the algorithm.
    Config: ClassVar[type | None] = None
    logger: MetricsLogger  # the run's metrics log, opened by `train`
    evals: dict[str, dict[str, float]]  # the run's evaluations by when they ran ("start", "step-N", "end")

    def __init__(self, cfg: TrainConfig, model: Any = None, tokenizer: Any = None):

        self.cfg = cfg
        # The data-parallel ranks a launcher started (`trainers/distributed.py`); one process without one.
        self.dist = Dist.from_env(cpu=(cfg.policy.device or "").startswith("cpu"), shard=cfg.hardware.fsdp)
        if self.dist.sharded and cfg.lora.enabled:
            raise ConfigError(
                "hardware.fsdp shards full fine-tuning over the GPUs; a LoRA run keeps one whole copy per GPU: "
                "set lora.enabled=false, or hardware.fsdp=false (and no fsdp in the accelerate config)"
            )
        if cfg.tasks_per_step % self.dist.world:
            raise ConfigError(
                f"tasks_per_step={cfg.tasks_per_step} must be a multiple of the {self.dist.world} processes: "
                "each rank collects whole task groups"
            )
        # What the run needs is checked before anything loads or is written.
        self.env_id = check_env(cfg.env)
        check_env(EnvConfig(id=cfg.env.id, kwargs=dict(cfg.env.kwargs), split=cfg.eval.split), prefix="eval")
        if model is None:
            check_model(cfg.policy.model)
        self.out = self.prepare_output_dir()
        if cfg.threads is not None:
            # On oversubscribed cores, OpenMP threads spin-wait on each other: one thread per
            # process was 3x faster than two for SmolLM2 on the shared 2-core machine.
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)  # the same on every rank: the initial weights (a LoRA adapter's) must agree
        if model is None:
            device = cfg.policy.device
            if self.dist.device is not None and device in (None, "cuda"):
                device = str(self.dist.device)  # one GPU per local rank
            model, tokenizer = build_trainable_model(
                cfg.policy.model, cfg.policy.dtype, device, cfg.lora, cfg.optim.gradient_checkpointing
            )
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.pad_id = pad_token_id(tokenizer)
        hf = cfg.policy.backend == "hf"
        # The weights rollouts read: the trained model, or a copy (bf16 on a GPU; async_steps;
        # sharded weights, which rollouts, evaluations and the final model read gathered).
        self.sampler = Sampler(
            model,
            rollout_dtype(cfg.policy.rollout_dtype, self.device) if hf else None,
            separate=cfg.async_steps > 0 or self.dist.sharded,
        )
        self.reference: Reference | None = self.build_reference()  # the KL term's pi_ref, where there is one
        if self.dist.sharded:  # every decoder layer split over the ranks (copies are taken before)
            self.dist.shard(model, bf16=self.device.type == "cuda")
            if self.dist.is_main:
                print(
                    f"agentgym: FSDP2: the weights, gradients and AdamW state are sharded over {self.dist.world} "
                    "processes; rollouts and evaluations read a whole copy gathered after each update",
                    file=sys.stderr,
                )
            if self.reference is not None:
                self.dist.shard(self.reference.copy, bf16=False)
        self.policy = self.build_policy()
        self.curriculum = Curriculum(cfg.curriculum)
        self.modules = self.extra_modules()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.params += [p for m in self.modules.values() for p in m.parameters()]
        updates = cfg.steps * cfg.optim.ppo_epochs * cfg.optim.minibatches
        self.meter = ComputeMeter(cfg.compute)
        self.fraction_before_step = 0.0  # the budget's fraction used before the last step ran
        progress = (lambda: self.meter.fraction) if self.meter.budgeted else None
        self.optimizer, self.scheduler = build_optimizer(self.params, cfg.optim, updates, progress=progress)
        if self.dist.enabled:
            # Sharded weights were built identically on every rank; the rest comes from rank 0.
            for module in (*([] if self.dist.sharded else [model]), *self.modules.values()):
                self.dist.broadcast_params(module)
            seed_everything(self.dist.seed(cfg.seed))
        self.task_ids = [t.id for t in env_tasks(cfg.env)]
        self.step = 0
        self.last_metrics: dict[str, float] | None = None
        self.pool: RolloutPool | None = None
        self.stop_requested: str | None = None  # why the run should stop after the step in progress (`stop`)
        self.progress_label = "train"  # the progress bar's label (an experiment names the arm and seed)
        # async_steps: the next step's rollouts, collecting (`prefetching`) or collected (`pending`).
        self.prefetching: Future[Pending] | None = None
        self.pending: Pending | None = None
        self.behaviour: list[list[list[float]]] | None = None  # the batch's log-probs under the weights that sampled it

    def algo_config(self) -> Any:
        """This algorithm's section of the config (`cfg.<algo>`, a `Config`)."""
        section = getattr(self.cfg, self.cfg.algo, None)
        if self.Config is not None and not isinstance(section, self.Config):
            raise ConfigError(
                f"algo={self.cfg.algo!r} trains with {type(self).__name__}, whose settings are "
                f"{self.Config.__name__}, but the config's {self.cfg.algo} section is {type(section).__name__}"
            )
        return section

    def prepare_output_dir(self) -> Path:
        """`output_dir`, writable. A folder that holds a run (its metrics, checkpoints or
        config) is refused unless the run is resumed (`resume=true`) or replaced
        (`overwrite=true`, which empties it first): a new run would silently mix its
        metrics with the old one's, and the old checkpoints would win the next resume."""
        cfg = self.cfg
        out = check_output_dir(cfg.output_dir)
        held = [name for name in ("metrics.jsonl", "checkpoints", "config.json") if (out / name).exists()]
        if held and not cfg.resume:
            if not cfg.overwrite:
                raise ConfigError(
                    f"output_dir: {str(out)!r} holds a run ({', '.join(held)}): continue it with resume=true, "
                    "replace it with overwrite=true, or choose another output_dir"
                )
            if self.dist.is_main:
                for entry in out.iterdir():
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            self.dist.barrier()
        return out

    def build_policy(self) -> Any:
        """The rollout policy: the trained model itself (hf), or a vLLM engine that loads the
        trained weights before the first generation after each update (vllm)."""
        p = self.cfg.policy
        if p.backend == "vllm":
            from agentgym.policy.vllm_policy import VLLMPolicy

            return VLLMPolicy(
                p.model, self.tokenizer, trained=self.model, gpu_memory_utilization=p.gpu_memory_utilization
            )
        from agentgym.policy.hf import HFPolicy

        return HFPolicy(self.sampler.model, self.tokenizer, batch_size=p.batch_size)

    # ------------------------------------------------------------------ algorithm hooks

    def build_reference(self) -> Reference | None:
        """The KL term's reference policy, for algorithms that have one (built before the
        model is sharded: a sharded module cannot be copied)."""
        return None

    def extra_modules(self) -> dict[str, torch.nn.Module]:
        """Modules trained beside the model (PPO's value head); saved in checkpoints."""
        return {}

    @abstractmethod
    def update(self, trajs: list[Trajectory], horizon: int) -> dict[str, float]:
        """One update on a rollout batch (trajectories in groups of `samples_per_task`)."""

    # ------------------------------------------------------------------ pieces of a step

    def collect(self, step: int, horizon: int) -> tuple[list[Trajectory], RolloutStats]:
        """`tasks_per_step` tasks x `samples_per_task` rollouts, in groups (spec order); of
        several ranks, rank r collects the groups of picks[r::world].

        Tasks and sampling noise are functions of (seed, step) alone (and the rank), so a
        resumed run draws exactly what an uninterrupted one would have drawn.
        """
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, step])
        k = cfg.tasks_per_step
        picks = rng.choice(len(self.task_ids), size=k, replace=k > len(self.task_ids))
        specs = [
            EpisodeSpec(self.task_ids[picks[i]], horizon, sample=s, seed=episode_seed(cfg.seed, i, s, step))
            for i in range(self.dist.rank, k, self.dist.world)
            for s in range(cfg.samples_per_task)
        ]
        torch.manual_seed(self.dist.seed(cfg.seed * 1_000_003 + step))
        self.clear_policy_cache()
        self.sampler.eval()
        stats = RolloutStats()
        sampling, options = rollout_settings(cfg)
        trajs = self.rollout_pool().run(self.policy, specs, sampling, options, stats=stats)
        for t in trajs:
            t.policy_version = self.sampler.version
        return trajs, stats

    def collect_pending(self, step: int, horizon: int) -> Pending:
        """`collect`, then the rollouts' log-probs under the weights that sampled them (the
        ratio's reference in asynchronous training), while the sampler still holds them."""
        trajs, stats = self.collect(step, horizon)
        o = self.cfg.optim
        behaviour = self.sampler.logprobs(
            trajs, self.pad_id, self.cfg.sampling.temperature, o.logprob_chunk, o.micro_batch
        )
        return Pending(step, horizon, trajs, behaviour, stats.generate_seconds)

    def rollouts(self, step: int, horizon: int) -> tuple[list[Trajectory], RolloutStats]:
        """Step `step`'s rollouts: collected now, or (async_steps) while the last update ran.
        With async_steps, `behaviour` holds their log-probs under the weights that sampled them."""
        if self.pending is None:
            if not self.cfg.async_steps:
                return self.collect(step, horizon)
            self.pending = self.collect_pending(step, horizon)  # nothing collected ahead: the first step, a resume
        pending, self.pending = self.pending, None
        if pending.step != step or pending.horizon != horizon:
            raise RuntimeError(
                f"the rollouts collected for step {pending.step} at horizon {pending.horizon} "
                f"are not step {step}'s at horizon {horizon}"
            )
        self.behaviour = pending.behaviour
        stats = RolloutStats()
        stats.generate_seconds = pending.generate_seconds
        return pending.trajs, stats

    def prefetch(self, step: int, metrics: dict[str, float]) -> None:
        """async_steps: start collecting step `step`'s rollouts in the background, with the
        weights the sampler holds now (those of before the update about to run); nothing
        when the run ends before that step."""
        if not self.cfg.async_steps or self.meter.exhausted or step >= self.cfg.steps:
            return
        horizon = self.horizon(step, metrics)  # the rollout metrics are all the curriculum reads
        executor = ThreadPoolExecutor(1, thread_name_prefix="agentgym-rollouts")
        self.prefetching = executor.submit(self.collect_pending, step, horizon)
        executor.shutdown(wait=False)

    def await_prefetch(self) -> None:
        """Wait for the rollouts `prefetch` started (their errors are raised here)."""
        if self.prefetching is not None:
            future, self.prefetching = self.prefetching, None
            self.pending = future.result()

    def rollout_pool(self) -> RolloutPool:
        """The run's one rollout pool (started on first use): training rollouts, the
        evaluations and the warm start all use it, so env workers, Ray and browsers start
        once per run, not once per step. `close()` stops it."""
        if self.pool is None:
            maker = env_maker(self.env_id, **self.cfg.env.kwargs)  # carries the registry entry to Ray workers
            self.pool = RolloutPool.from_config(self.cfg.rollout, maker, self.env_id)
        return self.pool

    def close(self) -> None:
        """Stop the rollout pool (its env workers, and Ray if the pool started it)."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def gather(self, trajs: list[Trajectory]) -> list[Trajectory]:
        """The whole step's trajectories from every rank's share, in the order one process
        would have collected them (rank r's k-th group is group r + k * world)."""
        if not self.dist.enabled:
            return trajs
        g = self.cfg.samples_per_task
        shares = [[s[i : i + g] for i in range(0, len(s), g)] for s in self.dist.all_gather_object(trajs)]
        return [t for k in range(len(shares[0])) for share in shares for t in share[k]]

    def micro_batches(self, rows: list[Row]) -> list[list[Row]]:
        """`rows` in micro-batches of `optim.micro_batch` (similar lengths together). Sharded,
        every rank gets as many as the rank with the most: a forward or backward pass is a
        collective there, and a rank that ran fewer would leave the others waiting. The short
        lists end in empty micro-batches, for which the caller runs `padding_pass`."""
        mbs = micro_batches(rows, self.cfg.optim.micro_batch)
        if self.dist.sharded:
            (most,) = self.dist.max([len(mbs)])
            mbs += [[] for _ in range(int(most) - len(mbs))]
        return mbs

    def padding_pass(self, module: Any, backward: bool) -> None:
        """A pass that matches another rank's micro-batch and adds nothing: `module`'s forward
        on two padding tokens and, with `backward`, the backward of 0 x its log-prob (every
        weight's gradient += 0, and the reduce-scatter the other ranks are waiting in)."""
        batch = pad_rows([Row(input_ids=[self.pad_id] * 2, loss_mask=[0, 0], old_logprobs=[0.0, 0.0])], self.pad_id)
        with autocast(self.device), torch.set_grad_enabled(backward):
            logp = token_logprobs(module, batch.to(self.device), 1.0, self.cfg.optim.logprob_chunk, every_position=True)
        if backward:
            (logp.sum() * 0.0).backward()

    def ratio_reference(self) -> str:
        """Where the ratio's old log-probs come from (`optim.old_logprobs`): "current" (the
        weights being updated, when they are the ones that sampled and one optimizer step
        uses the batch), "recompute" (a no-grad pass under the pre-update weights),
        "behaviour" (async_steps: the weights that sampled, one version older, by the pass
        `collect_pending` made on the sampler's copy), or "rollout" (the sampler's records)."""
        o = self.cfg.optim
        if o.old_logprobs != "auto":
            return o.old_logprobs
        if self.behaviour is not None:
            return "behaviour"
        return "current" if o.ppo_epochs == 1 and o.minibatches == 1 else "recompute"

    def fill_behaviour(self, rows: list[Row]) -> None:
        """Each row's old log-probs: its tokens' under the weights that sampled them."""
        assert self.behaviour is not None
        for r in rows:
            r.old_logprobs = list(self.behaviour[r.traj_index][r.segment])

    def optimizer_step(self) -> float:
        """Sum the accumulated gradients over the ranks, clip, step the optimizer and the LR
        schedule; the gradient norm before clipping."""
        self.dist.all_reduce_grads(self.params)
        return clip_and_step(self.optimizer, self.scheduler, self.cfg.optim.max_grad_norm)

    def optimize(self, rows: list[Row], loss: Callable[[list[Row]], dict[str, float]]) -> dict[str, float]:
        """`optim.ppo_epochs` passes over `rows`, each split into `optim.minibatches`; one
        optimizer step per minibatch after `loss(minibatch)` has accumulated its gradients.
        Returns the statistics `loss` reports (and the gradient norm), averaged over the steps."""
        o = self.cfg.optim
        totals: dict[str, float] = defaultdict(float)
        for _ in range(o.ppo_epochs):
            for part in range(o.minibatches):
                stats = loss(rows[part :: o.minibatches])
                stats["grad_norm"] = self.optimizer_step()
                for k, v in stats.items():
                    totals[k] += v / (o.ppo_epochs * o.minibatches)
        return dict(totals)

    def clear_policy_cache(self) -> None:
        """Kept keys/values are stale once the weights change (and eval must not warm rollouts)."""
        clear = getattr(self.policy, "clear_cache", None)
        if callable(clear):
            clear()

    def evaluate(self, step: int, horizon: int) -> dict[str, float]:
        """success@h on held-out tasks; RNG states are restored after, so evaluating never
        changes what training draws next."""
        cfg, ev = self.cfg, self.cfg.eval
        sampling = SamplingConfig(**to_dict(cfg.sampling))
        if ev.temperature is not None:
            sampling.temperature = ev.temperature
        eval_cfg = EvalConfig(
            env=EnvConfig(id=cfg.env.id, kwargs=dict(cfg.env.kwargs), split=ev.split, num_tasks=ev.num_tasks),
            policy=cfg.policy,
            sampling=sampling,
            rollout=cfg.rollout,
            horizons=list(ev.horizons),
            samples_per_task=ev.samples_per_task,
            seed=cfg.seed,
            output_dir=str(self.out / "eval" / f"step-{step:06d}"),
            training_horizon=horizon,
            bootstrap=200,
            progress=cfg.progress,
        )
        from agentgym.eval import evaluate

        saved = rng_state()
        self.clear_policy_cache()
        self.model.eval()
        try:
            result = evaluate(eval_cfg, self.policy, pool=self.rollout_pool())
        finally:
            set_rng_state(saved)
            self.clear_policy_cache()
        return {f"eval.success@{r['horizon']}": r["success"] for r in result.rows}

    def evaluate_on_main(self, step: int, horizon: int) -> dict[str, float]:
        """`evaluate` on the main rank ({} on the others, which wait for it): evaluations
        are logged, never fed back into training."""
        scores = self.evaluate(step, horizon) if self.dist.is_main else {}
        self.dist.barrier()
        return scores

    def warm_start(self) -> dict[str, float]:
        """The behaviour-cloning warm start on the main rank; the others receive its weights."""
        from agentgym.trainers.sft import warm_start

        cfg = self.cfg
        info: dict[str, float] = {}
        if self.dist.sharded:
            # Every rank runs the same warm start (the same episodes, the same batches): its
            # passes are collectives. The backward sums the ranks' equal gradients, hence the scale.
            cfg = dataclasses.replace(cfg, warm_start=dataclasses.replace(cfg.warm_start, backend="plain"))
            return warm_start(self.model, self.tokenizer, cfg, pool=self.rollout_pool(), loss_scale=1 / self.dist.world)
        if self.dist.is_main:
            if self.dist.enabled:
                # TRL's SFTTrainer would see WORLD_SIZE and wrap the model in DDP on this
                # rank alone (the others would never join): the plain loop, same loss.
                cfg = dataclasses.replace(cfg, warm_start=dataclasses.replace(cfg.warm_start, backend="plain"))
            info = warm_start(self.model, self.tokenizer, cfg, pool=self.rollout_pool())
        self.dist.broadcast_params(self.model)
        return info

    @property
    def reference_path(self) -> Path:
        """Where a reference captured after the warm start is kept (once per run)."""
        return self.out / "checkpoints" / "reference.pt"

    def start_rl_from_here(self) -> None:
        """RL starts from the model as it is now (after the warm start): the KL reference
        becomes these weights, written once so that checkpoints can hold them."""
        if self.reference is None:
            return
        self.reference.capture()
        state = self.reference.state_dict()  # sharded: gathered whole, by every rank
        if self.dist.is_main:
            self.reference.save(self.reference_path, state)

    def save(self) -> Path:
        """A checkpoint of the steps done; call it on every rank: sharded weights are
        gathered whole first, then the main rank alone writes."""
        path = self.out / "checkpoints" / f"step-{self.step:06d}"
        model_state = optimizer_state = None
        if self.dist.sharded:
            model_state, optimizer_state = self.dist.full_states(self.model, self.modules, self.optimizer)
        # async_steps: the next step's rollouts, every rank's share (a collective, as the above).
        pending = self.dist.all_gather_object(self.pending.to_state()) if self.pending is not None else None
        if not self.dist.is_main:
            return path
        state = {
            "curriculum": self.curriculum.state_dict(),
            "last_metrics": self.last_metrics,
            "compute_used": self.meter.used,
            "fraction_before_step": self.fraction_before_step,
        }
        links = {}
        if self.reference is not None and not self.reference.initial:
            links["reference.pt"] = self.reference_path
        files = {"pending.pt": pending} if pending is not None else None
        return save_checkpoint(
            self.out / "checkpoints",
            self.step,
            self.model,
            self.modules,
            self.optimizer,
            self.scheduler,
            state,
            keep=self.cfg.keep_checkpoints,
            links=links,
            files=files,
            model_state=model_state,
            optimizer_state=optimizer_state,
        )

    def resume(self) -> bool:
        found = newest_intact_checkpoint(self.out / "checkpoints")  # damaged newer ones are skipped, warned
        if found is None:
            print(f"resume=true: no checkpoint in {self.out / 'checkpoints'}; starting from step 0", file=sys.stderr)
            return False
        # Every rank loads the same checkpoint, RNG states included: rank 0's serve all of
        # them, as each step's sampling noise is reseeded from (seed, step, rank) in `collect`.
        path, ckpt = found
        load_full = None
        if self.dist.sharded:

            def load_full(model_state: dict[str, Any], optimizer_state: dict[str, Any]) -> None:
                self.dist.load_full_states(self.model, self.modules, self.optimizer, model_state, optimizer_state)

        state = apply_checkpoint(ckpt, path, self.model, self.modules, self.optimizer, self.scheduler, load_full)
        if self.reference is not None and "reference.pt" in ckpt:
            self.reference.load_state_dict(ckpt["reference.pt"])  # captured after the warm start
        self.step = state["step"]
        self.curriculum.load_state_dict(state["curriculum"])
        self.last_metrics = state["last_metrics"]
        self.meter.used = float(state.get("compute_used", 0.0))
        self.fraction_before_step = float(state.get("fraction_before_step", 0.0))
        self.resume_pending(ckpt.get("pending.pt"), path)
        self.clear_policy_cache()
        return True

    def resume_pending(self, shares: list[dict[str, Any]] | None, path: Path) -> None:
        """The next step's rollouts an asynchronous run had collected when it saved (this
        rank's share): the resumed run trains on them, as the uninterrupted run did."""
        self.pending = None
        if not shares or not self.cfg.async_steps:
            return
        if len(shares) != self.dist.world:
            if self.dist.is_main:
                print(
                    f"agentgym: warning: {path} holds the next step's rollouts of {len(shares)} processes, not "
                    f"{self.dist.world}: they are collected again, with the resumed weights",
                    file=sys.stderr,
                )
            return
        self.pending = Pending.from_state(shares[self.dist.rank])

    # ------------------------------------------------------------------ the loop

    def train(self) -> dict[str, Any]:
        """Run the steps up to `cfg.steps`, or until the compute budget is used: `begin`,
        `run_step` for each step, `finish`.

        SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption) while the steps run stops the
        run cleanly: the step in progress ends, a checkpoint of the steps done is written, a
        line on stderr says how to continue (`resume=true`), and `train` returns. A second
        signal interrupts at once, as it would without the trainer. See `stop`.

        Returns the steps done, the last step's record, the evaluations made, what stopped
        the run early (a signal's name; None for a run that reached its end), and the compute
        used (`compute`: used, total, unit, overshoot, and whether the budget was reached).
        """
        self.stop_requested = None  # a request stops the run in progress, not the next one
        self.logger = self.open_log()
        stopped: str | None = None
        record: dict[str, Any] = {}
        try:
            self.begin()
            with self.progress_bar() as bar, self.stopping_on_signals():
                while not self.done() and stopped is None:
                    used = self.meter.used
                    record = self.run_step(self.step)
                    bar.update(self.meter.used - used if self.meter.budgeted else 1)
                    step = f"step={self.step} " if self.meter.budgeted else ""  # the bar counts compute
                    bar.set_postfix_str(
                        f"{step}h={record['horizon']} reward={record['reward_mean']:.2f} "
                        f"success={record['success_rate']:.2f}"
                    )
                    stopped = self.stop_agreed()
            if stopped is None:
                self.finish()
            else:
                self.checkpoint_stop(stopped)
            self.plot()
            self.dist.barrier()  # no rank leaves (and closes the process group) while another still works
        finally:
            self.logger.close()
            self.close()
        return {"step": self.step, "last": record, "evals": self.evals, "stopped": stopped, "compute": self.compute()}

    def done(self) -> bool:
        """Whether the run has reached its end: its compute budget, or `cfg.steps` steps."""
        return self.meter.exhausted or self.step >= self.cfg.steps

    def compute(self) -> dict[str, Any]:
        """The compute used so far, against the budget when there is one."""
        c, m = self.cfg.compute, self.meter
        out: dict[str, Any] = {"unit": c.unit, "used": m.used, "steps": self.step}
        if m.budgeted:
            out.update(total=c.total, overshoot=m.overshoot, reached=m.exhausted)
        return out

    def open_log(self) -> MetricsLogger:
        """The run's `config.json` and its metrics log (both written by the main rank alone)."""
        cfg, main = self.cfg, self.dist.is_main
        if main:
            (self.out / "config.json").write_text(json.dumps(to_dict(cfg), indent=1))
        return MetricsLogger(self.out, cfg.tensorboard, cfg.wandb_project, to_dict(cfg), enabled=main)

    def begin(self) -> None:
        """Where the run starts. Resumed: at the newest checkpoint, keeping the log up to its
        step. Fresh: at step 0 with a fresh log, after the warm start and the evaluation at
        start (neither is redone on resume)."""
        cfg = self.cfg
        self.evals = {}
        resumed = cfg.resume and self.resume()
        if len(set(self.dist.all_gather_object(self.step))) > 1:
            raise RuntimeError(
                f"the ranks resumed from different steps: output_dir={cfg.output_dir} must be one folder every rank sees"
            )
        if resumed:
            self.logger.truncate(self.step)  # a resumed run rewrites what came after its checkpoint
            self.sampler.sync(self.step)
            return
        if self.dist.is_main and self.logger.path.exists():
            self.logger.path.unlink()  # a fresh run in the same folder starts a fresh log
        if cfg.warm_start.enabled:
            t0 = time.perf_counter()
            info = self.warm_start()
            self.start_rl_from_here()
            self.logger.log({"step": -1, "warm_start": True, **info, "time_s": time.perf_counter() - t0}, 0)
            seed_everything(self.dist.seed(cfg.seed))  # RL starts from the same RNG whether or not SFT ran
        self.sampler.sync(self.step)  # the weights RL starts from (warm-started; the same on every rank)
        if cfg.eval.at_start:
            self.evals["start"] = self.evaluate_on_main(0, self.horizon(0))
            self.logger.log({"step": 0, "eval_at": "start", "compute_points": [0.0], **self.evals["start"]}, 0)
            if self.meter.budgeted:
                self.keep_checkpoint(0.0)

    def horizon(self, step: int, metrics: dict[str, float] | None = None) -> int:
        """The curriculum's horizon for step `step` (at the fraction of the budget used now)."""
        progress = self.meter.fraction if self.meter.budgeted else None
        return self.curriculum.horizon(step, metrics, progress=progress)

    def run_step(self, step: int) -> dict[str, Any]:
        """Step `step`: rollouts at the curriculum's horizon, one update, the step's record in
        the log (with the evaluation due after it), then the checkpoint due after it.
        Returns the record."""
        cfg, main = self.cfg, self.dist.is_main
        horizon = self.horizon(step, self.last_metrics)
        lr = self.scheduler.get_last_lr()[0]  # the rate this step's update uses
        t0 = time.perf_counter()
        trajs, stats = self.rollouts(step, horizon)
        batch = self.gather(trajs)
        self.fraction_before_step = self.meter.fraction
        points = self.meter.add(compute_cost(batch, cfg.compute.unit))  # the whole step's, the same on every rank
        t1 = time.perf_counter()
        self.model.train()
        metrics = batch_metrics(batch)  # the same on every rank: the curriculum reads them
        if main:
            warn_aborted(metrics, f"training step {step}")
        if cfg.async_steps:
            versions = [t.policy_version for t in batch if t.policy_version is not None]
            metrics["policy_staleness"] = float(step - min(versions)) if versions else 0.0
            self.prefetch(step + 1, metrics)  # the next step's rollouts, while this update runs
        self.model.train()
        metrics.update(self.update(trajs, horizon))  # this rank's share; sums over ranks inside
        self.behaviour = None
        t_update = time.perf_counter()
        self.await_prefetch()
        self.sampler.sync(step + 1)  # the rollouts (and evaluations) from here on read the updated weights
        self.clear_policy_cache()
        t2 = time.perf_counter()
        self.last_metrics = metrics
        record = {"step": step, "horizon": horizon, "lr": lr, **metrics}
        record.update(time_rollout_s=t1 - t0, time_update_s=t2 - t1, time_generate_s=stats.generate_seconds)
        if cfg.async_steps:  # the update's own time, and the wait for the next step's rollouts after it
            record.update(time_update_s=t_update - t1, time_wait_s=t2 - t_update)
        record.update(compute_used=self.meter.used, compute_fraction=self.meter.fraction)
        self.step = step + 1
        periodic = cfg.eval.every and self.step % cfg.eval.every == 0 and self.step < cfg.steps
        if periodic or points:
            self.evals[f"step-{self.step}"] = self.evaluate_on_main(self.step, horizon)
            record.update(self.evals[f"step-{self.step}"])
            if points:
                record["compute_points"] = points
        self.logger.log(record, step)
        if cfg.save_final and step == 0 and main:
            save_trajectories(batch, self.out / "rollouts" / "step-000000.jsonl")
        if points:
            self.keep_checkpoint(*points)
        elif self.checkpoint_due():
            self.save()
        return record

    def keep_checkpoint(self, *points: float, path: Path | None = None) -> Path:
        """A checkpoint of the steps done (`path`, when just written), kept as
        `checkpoints/at-F/` for each evaluation point F (a fraction of the budget) beside the
        rolling ones, for later evaluations. Call it on every rank (see `save`)."""
        path = path or self.save()
        if not self.dist.is_main:
            return path
        for f in points:
            kept = self.out / "checkpoints" / f"at-{f:.4g}"
            if kept.exists():
                shutil.rmtree(kept)
            kept.mkdir(parents=True)
            for item in path.iterdir():
                link_or_copy(item, kept / item.name)
        return path

    def checkpoint_due(self) -> bool:
        """Whether the steps done call for a periodic checkpoint (`checkpoint_every`); the
        last step's checkpoint is `finish`'s."""
        every = self.cfg.checkpoint_every
        return bool(every) and self.step % every == 0 and not self.done()

    def finish(self) -> None:
        """After the last step: its checkpoint, the evaluation at end, the trained model."""
        cfg, main = self.cfg, self.dist.is_main
        path = self.save()
        if self.meter.budgeted and not self.meter.exhausted and main:
            print(
                f"agentgym: warning: the run reached steps={cfg.steps} having used {self.meter.used:.0f} of its "
                f"compute budget of {cfg.compute.total:.0f} {cfg.compute.unit}: raise steps",
                file=sys.stderr,
            )
        if cfg.eval.at_end:
            self.evals["end"] = self.evaluate_on_main(self.step, self.horizon(self.step - 1, None))
            record: dict[str, Any] = {"step": self.step, "eval_at": "end", **self.evals["end"]}
            if self.meter.budgeted:
                record["compute_points"] = [*self.meter.points_left(self.fraction_before_step), 1.0]
                record.update(self.compute())
                self.keep_checkpoint(*record["compute_points"], path=path)
            self.logger.log(record, self.step)
        if cfg.save_final and main:
            self.save_final()

    def plot(self) -> None:
        """`training.png` from the metrics log (the main rank's; the others keep none)."""
        if not (self.logger.enabled and self.logger.path.exists()):
            return
        from agentgym.trainers.plots import plot_training

        title = f"{self.cfg.algo.upper()} on {self.cfg.env.id}"
        plot_training(self.logger.path, self.out / "training.png", title=title)

    def progress_bar(self) -> tqdm:
        """The steps' progress on the terminal (`progress`), from the step the run starts at."""
        if self.meter.budgeted:
            c = self.cfg.compute
            return tqdm(
                total=c.total,
                initial=self.meter.used,
                desc=self.progress_label,
                unit=" " + c.unit.replace("_", " "),
                unit_scale=True,
                disable=not (self.cfg.progress and self.dist.is_main),
            )
        return tqdm(
            total=self.cfg.steps,
            initial=self.step,
            desc=self.progress_label,
            unit="step",
            disable=not (self.cfg.progress and self.dist.is_main),
        )

    # ------------------------------------------------------------------ stopping early

    def stop(self, reason: str = "stop()") -> None:
        """Ask the run to stop after the step in progress, with a checkpoint of the steps done
        (what SIGINT and SIGTERM do while `train` runs; call it from a callback or another
        thread to the same effect). It only sets a flag, which the loop reads between steps:
        a step is never cut in half, so `resume=true` continues exactly.

        Example:
            >>> threading.Timer(3600, trainer.stop).start()  # an hour of training at most
            >>> trainer.train()["stopped"]
            'stop()'
        """
        self.stop_requested = self.stop_requested or reason

    def stop_agreed(self) -> str | None:
        """Why the run stops after the step just done, or None. Any rank's request stops every
        rank, at the same step: ranks that disagreed would wait forever in each other's
        collectives (a Ctrl-C reaches the ranks at slightly different moments)."""
        return next((reason for reason in self.dist.all_gather_object(self.stop_requested) if reason), None)

    @contextlib.contextmanager
    def stopping_on_signals(self) -> Iterator[None]:
        """While the steps run, the first SIGINT or SIGTERM calls `stop`; it also puts the
        previous handlers back, so that a second signal does what it did before (Ctrl-C
        raises KeyboardInterrupt, SIGTERM terminates): a user can still force-quit.

        Only the main thread may set signal handlers: elsewhere (a thread of a notebook or a
        test) the steps run without them. A signal the process ignores (SIG_IGN, e.g. SIGINT
        in a background job) stays ignored.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        previous = {sig: h for sig, h in previous.items() if h not in (None, signal.SIG_IGN)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        def on_signal(signum: int, frame: Any) -> None:
            restore()
            self.stop(signal.Signals(signum).name)

        for sig in previous:
            signal.signal(sig, on_signal)
        try:
            yield
        finally:
            restore()

    def checkpoint_stop(self, reason: str) -> None:
        """The end of a stopped run: a checkpoint of the steps done (unless the last step has
        just written one) and one line on stderr saying how to continue."""
        path = self.out / "checkpoints" / f"step-{self.step:06d}"
        if not self.checkpoint_due():  # when due, the step just done has written it
            path = self.save()
        if not self.dist.is_main:
            return
        print(
            f"stopped by {reason} after step {self.step} of {self.cfg.steps}: checkpoint {path}; "
            "continue with resume=true",
            file=sys.stderr,
        )

    def save_final(self) -> Path:
        """The trained model as a plain folder (`agentgym eval ... policy.model=DIR` loads it);
        a LoRA adapter is merged into a copy of the base weights; sharded weights are the
        sampler's whole copy, synced after the last update."""
        import copy

        path = self.out / "final"
        model = self.sampler.model if self.dist.sharded else self.model
        if hasattr(model, "merge_and_unload"):
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
