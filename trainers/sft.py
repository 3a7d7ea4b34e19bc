"""Behaviour cloning on successful trajectories: the warm start before RL.

A small model that never produces a well-formed action gives GRPO nothing to compare
(every rollout of a group earns 0), so a short supervised pass on successful episodes
comes first. The episodes come from a file of trajectories, or are collected on the fly
by a scripted oracle (`agentgym.oracle`, e.g.
`agentgym.envs.guess_number.oracle:ConsistentRandomGuesser`) through the same rollout
code as RL, so the tokens trained on are exactly the tokens the policy will see. The
loss is on the assistant's tokens only: the trajectories' loss masks.

Two backends: the trainers' own loop (`plain`, the default: shuffled epochs, the loss's
log-probs at the assistant's tokens only and the rows' shared prompt run once, as in
the RL update), or TRL's `SFTTrainer` (`trl`: the dataset carries `labels` that are -100
off the mask; same loss, about three times the time on the CPU, where its LM head runs
at every position).
"""

from __future__ import annotations

import dataclasses
import importlib
import tempfile
from typing import Any

import numpy as np
import torch
from agentgym.trainers.common import (
    Row,
    autocast,
    build_optimizer,
    clip_and_step,
    pad_rows,
    rows_from_trajectories,
    token_logprobs,
)
from agentgym.trainers.config import TrainConfig, WarmStartConfig
from tqdm import tqdm

from agentgym.checks import check_env
from agentgym.config import ConfigError
from agentgym.oracle import Oracle
from agentgym.policy import ScriptedPolicy
from agentgym.policy.models import pad_token_id
from agentgym.registration import env_tasks
from agentgym.rollout import EpisodeSpec, RolloutPool, env_maker, episode_rates, rollout_settings
from agentgym.trajectory import Trajectory, load_trajectories

__all__ = ["behaviour_clone", "collect_oracle", "load_oracle", "sft_rows", "warm_start"]


def load_oracle(spec: str, kwargs: dict[str, Any]) -> Oracle:
    """The oracle `warm_start.oracle` names (`module:Class`), built with `kwargs`."""
    module, _, name = spec.partition(":")
    if not name:
        raise ConfigError(f"warm_start.oracle must look like module:Class, got {spec!r}")
    cls = getattr(importlib.import_module(module), name)
    if not callable(getattr(cls, "respond", None)):
        if callable(getattr(cls, "act", None)):
            raise ConfigError(
                f"warm_start.oracle: {spec} has act(observation) but no respond(messages): make it subclass "
                "agentgym.oracle.ReplayOracle (and give it reset()), which replays each conversation into act"
            )
        raise ConfigError(
            f"warm_start.oracle: {spec} is not an oracle: it needs respond(messages) -> str (agentgym.oracle)"
        )
    return cls(**kwargs)


def collect_oracle(cfg: TrainConfig, tokenizer: Any, pool: RolloutPool | None = None) -> list[Trajectory]:
    """`warm_start.episodes` oracle episodes on the training split (all outcomes), on
    `pool` (the trainer's) or on a pool of their own."""
    ws = cfg.warm_start
    env_id = check_env(cfg.env)
    task_ids = [t.id for t in env_tasks(cfg.env)]
    rng = np.random.default_rng([cfg.seed, 7919])
    picks = rng.choice(len(task_ids), size=ws.episodes, replace=ws.episodes > len(task_ids))
    specs = [EpisodeSpec(task_ids[j], ws.horizon, sample=0, seed=cfg.seed + i) for i, j in enumerate(picks)]
    policy = ScriptedPolicy(tokenizer, load_oracle(ws.oracle, ws.oracle_kwargs), name="oracle")
    sampling, options = rollout_settings(cfg)
    sampling = dataclasses.replace(sampling, temperature=0.0)  # a scripted oracle samples nothing
    if ws.context == "full":  # an oracle that cannot write summaries keeps the whole conversation
        options = dataclasses.replace(options, context="full", context_config=None)
    if pool is not None:
        return pool.run(policy, specs, sampling, options)
    with RolloutPool.from_config(cfg.rollout, env_maker(env_id, **cfg.env.kwargs), env_id) as own:
        return own.run(policy, specs, sampling, options)


def sft_rows(trajs: list[Trajectory]) -> list[Row]:
    """One row per segment of every successful trajectory; the loss mask is the assistant's tokens."""
    return rows_from_trajectories([t for t in trajs if t.success])


def behaviour_clone(
    model: Any, tokenizer: Any, rows: list[Row], ws: WarmStartConfig, cfg: TrainConfig, loss_scale: float = 1.0
) -> dict[str, float]:
    """Train on `rows` (loss on their masks); returns the loss before and after, on all rows.
    `loss_scale` multiplies the loss (1 / ranks where every sharded rank trains on the same rows)."""
    if not rows:
        raise RuntimeError(
            "the warm start has no successful trajectories to clone: check warm_start.oracle/path, "
            "or raise warm_start.horizon"
        )
    pad_id = pad_token_id(tokenizer)
    # The loss before and after is measured on a fixed sample: a full pass costs as much as training.
    probe = rows[:: max(1, len(rows) // 8)][:8]
    before = sft_loss(model, probe, pad_id, cfg.optim.micro_batch)
    steps = max(1, round(len(rows) * ws.epochs / ws.batch_size))
    if ws.backend == "trl":
        _train_trl(model, tokenizer, rows, ws, cfg)
    else:
        _train_plain(model, rows, ws, cfg, steps, pad_id, loss_scale)
    model.eval()
    after = sft_loss(model, probe, pad_id, cfg.optim.micro_batch)
    return {"sft_rows": float(len(rows)), "sft_loss_before": before, "sft_loss_after": after}


@torch.no_grad()
def sft_loss(model: Any, rows: list[Row], pad_id: int, micro: int = 8) -> float:
    """Token-mean negative log-likelihood of the masked tokens of `rows`."""
    model.eval()
    total, count = 0.0, 0.0
    device = next(model.parameters()).device
    for s in range(0, len(rows), micro):
        batch = pad_rows(rows[s : s + micro], pad_id).to(device)
        logp = token_logprobs(model, batch)
        total += float(-(logp * batch.loss_mask).sum())
        count += float(batch.loss_mask.sum())
    return total / max(count, 1.0)


def _train_plain(
    model: Any, rows: list[Row], ws: WarmStartConfig, cfg: TrainConfig, steps: int, pad_id: int, scale: float = 1.0
) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = build_optimizer(params, cfg.optim, steps, lr=ws.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    device = next(model.parameters()).device
    # Shuffled epochs, as TRL's loader goes: every row once per epoch, then a new order.
    order: list[int] = []
    while len(order) < steps * ws.batch_size:
        order += torch.randperm(len(rows), generator=gen).tolist()
    model.train()
    for step in tqdm(range(steps), desc="warm start", unit="step", disable=not cfg.progress):
        chosen = [rows[i] for i in order[step * ws.batch_size : (step + 1) * ws.batch_size]]
        n_tok = sum(sum(r.loss_mask[1:]) for r in chosen)
        for s in range(0, len(chosen), cfg.optim.micro_batch):
            batch = pad_rows(chosen[s : s + cfg.optim.micro_batch], pad_id).to(device)
            with autocast(device):
                logp = token_logprobs(model, batch, 1.0, cfg.optim.logprob_chunk)
                # Summed, then divided by the whole batch's tokens: a token-mean over the batch.
                loss = -(logp * batch.loss_mask).sum() / max(n_tok, 1)
                if scale != 1.0:
                    loss = loss * scale
            loss.backward()
        clip_and_step(opt, sched, cfg.optim.max_grad_norm)


def _train_trl(model: Any, tokenizer: Any, rows: list[Row], ws: WarmStartConfig, cfg: TrainConfig) -> None:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    # Labels are -100 off the assistant's tokens: TRL then trains on exactly our mask,
    # without re-rendering the conversation through a chat template.
    data = Dataset.from_list(
        [
            {
                "input_ids": r.input_ids,
                "labels": [t if m else -100 for t, m in zip(r.input_ids, r.loss_mask, strict=True)],
            }
            for r in rows
        ]
    )
    on_gpu = next(model.parameters()).device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="agentgym-sft-") as tmp:
        args = SFTConfig(
            output_dir=tmp,
            per_device_train_batch_size=min(ws.batch_size, cfg.optim.micro_batch),
            gradient_accumulation_steps=max(1, ws.batch_size // cfg.optim.micro_batch),
            num_train_epochs=ws.epochs,
            learning_rate=ws.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            max_grad_norm=cfg.optim.max_grad_norm,
            weight_decay=0.0,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=not on_gpu,
            bf16=on_gpu,
            seed=cfg.seed,
            max_length=None,
            dataset_num_proc=None,
            disable_tqdm=not cfg.progress,
            # TRL turns activation checkpointing on by default: it recomputes the forward
            # (slower) and would stay on for the RL steps that follow.
            gradient_checkpointing=False,
        )
        SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer).train()


def warm_start(
    model: Any, tokenizer: Any, cfg: TrainConfig, pool: RolloutPool | None = None, loss_scale: float = 1.0
) -> dict[str, float]:
    """The configured warm start: collect (on `pool`, if given) or load successful
    trajectories, then clone them (`loss_scale`: see `behaviour_clone`)."""
    ws = cfg.warm_start
    trajs = collect_oracle(cfg, tokenizer, pool) if ws.source == "oracle" else load_trajectories(ws.path)
    info = behaviour_clone(model, tokenizer, sft_rows(trajs), ws, cfg, loss_scale)
    info["sft_success_rate"] = episode_rates(trajs)["success_rate"]  # aborted episodes left out, as everywhere
    return info
