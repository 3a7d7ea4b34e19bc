"""GRPO on multi-turn trajectories (with the DAPO, Dr. GRPO and Mini-o3 switches).

For each task, G rollouts; each rollout's advantage is its reward relative to its group:

    A_i = (R_i - mean(R)) / (std(R) + eps)          (Dr. GRPO: no division by std)

Every generated token of every segment of rollout i gets A_i (SUPO: segments share it).
The loss is PPO's clipped surrogate with asymmetric clipping, averaged over the batch's
generated tokens (DAPO's token-mean), plus beta times the k3 KL to the frozen policy RL
started from (after any warm start; `trainers/reference.py`) when `kl_coef > 0`:

    L = -sum_t min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A) / N_tokens + beta * KL_k3

Masks (switches in `GRPOConfig`):
- over-turn (Mini-o3) and overlong: the rollout counts in its group's mean/std with reward
  0, but none of its tokens is trained;
- aborted: env or infra failures are left out of the group statistics and the loss;
- DAPO: groups whose rewards are all equal carry no signal and are dropped.

Ratio reference (`optim.old_logprobs`): with one optimizer update per rollout batch (the
default), the pre-update policy *is* the current one, so rho = exp(logp - logp.detach()):
exactly 1 in value, the right gradient, and no extra forward pass. With several updates
(`ppo_epochs > 1` or `minibatches > 1`) the old log-probs are recomputed under the
pre-update weights in one no-grad pass. The rollout-time log-probs are not the default:
generation runs with left padding and cached keys/values (bf16 on GPUs), so they differ
from the training forward by numerical noise that would bias the ratio, and scripted
policies report none.

GiGPO (`grpo.step_weight > 0`, see `trainers/gigpo.py`): each generated token of turn t
gets A_E + omega * A_S(t), a step-level advantage from the turns of the group's rollouts
that share turn t's state.

Data-parallel: each rank holds whole groups, so advantages are exact locally; the token
count of the token-mean and the update statistics are summed over the ranks, and so are the
gradients (`Trainer.optimizer_step`): the update is the single-process update on the
union of the ranks' rollouts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from agentgym.trainers.common import (
    Row,
    autocast,
    cut_masked,
    micro_batches,
    pad_rows,
    rows_from_trajectories,
    token_logprobs,
)
from agentgym.trainers.gigpo import step_advantages, token_advantages
from agentgym.trainers.loop import Trainer
from agentgym.trainers.reference import Reference

from agentgym.train_config import GRPOConfig
from agentgym.trajectory import Trajectory

__all__ = ["GRPOTrainer", "clipped_token_loss", "group_advantages", "kl_k3"]


def group_advantages(
    rewards: Sequence[float], groups: Sequence[int], end_reasons: Sequence[str], cfg: GRPOConfig
) -> tuple[list[float], list[bool], dict[str, float]]:
    """Per-rollout advantages and whether each rollout is trained.

    The std is the sample std (n - 1), as in TRL and verl; a group of one has std 0.

    Returns:
        (advantages, trained, info) where info counts dropped groups and masked rollouts.
    """
    adv = [0.0] * len(rewards)
    trained = [False] * len(rewards)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        if not (cfg.mask_aborted and end_reasons[i] == "aborted"):
            members[g].append(i)
    dropped = masked = 0
    for idx in members.values():
        hidden = {i for i in idx if cut_masked(end_reasons[i], cfg)}
        masked += len(hidden)
        r = [0.0 if i in hidden else float(rewards[i]) for i in idx]
        if cfg.drop_equal_groups and max(r) - min(r) < 1e-12:
            dropped += 1
            continue
        mean = sum(r) / len(r)
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - 1)) if len(r) > 1 else 0.0
        for i, x in zip(idx, r, strict=True):
            adv[i] = (x - mean) / (std + cfg.eps) if cfg.advantage_std else x - mean
            trained[i] = i not in hidden
    return adv, trained, {"groups_dropped": float(dropped), "rollouts_masked": float(masked)}


def clipped_token_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A) and the ratio rho."""
    ratio = torch.exp(logp - old_logp)
    a = adv.unsqueeze(-1) if adv.dim() == logp.dim() - 1 else adv
    return -torch.min(ratio * a, ratio.clamp(1 - eps_low, 1 + eps_high) * a), ratio


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref) per token: r - log r - 1, r = pi_ref / pi."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


class GRPOTrainer(Trainer):
    """GRPO: group-relative advantages, one per rollout, on every generated token."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.g = self.cfg.grpo
        if self.g.kl_coef > 0:  # the policy RL starts from (re-captured after a warm start)
            self.reference = Reference(self.model)

    def update(self, trajs: list[Trajectory], horizon: int) -> dict[str, float]:
        cfg = self.cfg
        groups = [i // cfg.samples_per_task for i in range(len(trajs))]
        adv, trained, info = group_advantages([t.reward for t in trajs], groups, [t.end_reason for t in trajs], self.g)
        rows = [r for r in rows_from_trajectories(trajs, adv, trained) if any(r.loss_mask)]
        if self.g.step_weight > 0:  # GiGPO: a step-level advantage per turn on top of A_E
            included = [not (self.g.mask_aborted and t.end_reason == "aborted") for t in trajs]
            step, step_info = step_advantages(trajs, groups, included, self.g)
            token_advantages(rows, adv, step, self.g.step_weight)
            info.update(step_info)
        abs_adv, n_adv, dropped, masked, n_rows, n_tok = self.dist.sum(
            [
                sum(abs(a) for a in adv),
                len(adv),
                info["groups_dropped"],
                info["rollouts_masked"],
                len(rows),
                sum(sum(r.loss_mask) for r in rows),
            ]
        )
        metrics = {"adv_abs_mean": abs_adv / max(n_adv, 1), "groups_dropped": dropped, "rollouts_masked": masked}
        metrics["rows_trained"] = n_rows
        metrics["tokens_trained"] = n_tok
        if self.g.step_weight > 0:
            shared, in_groups, steps = self.dist.sum(
                [info[k] for k in ("step_groups", "steps_in_step_groups", "steps")]
            )
            metrics["step_groups"] = shared
            metrics["step_group_share"] = in_groups / max(steps, 1.0)  # turns whose state another rollout shared
        o = cfg.optim
        mode = o.old_logprobs
        if mode == "auto":
            mode = "current" if o.ppo_epochs == 1 and o.minibatches == 1 else "recompute"
        self.prepare(rows, recompute_old=mode == "recompute")
        metrics.update(
            self.optimize(rows, lambda mb: self.surrogate_loss(mb, backward=True, current_as_old=mode == "current"))
        )
        return metrics

    @torch.no_grad()
    def prepare(self, rows: list[Row], recompute_old: bool) -> None:
        """Fill old log-probs (pre-update weights) and reference log-probs where needed."""
        if not rows or (not recompute_old and self.g.kl_coef <= 0):
            return
        self.model.eval()  # no dropout in the reference passes
        temp, chunk = self.cfg.sampling.temperature, self.cfg.optim.logprob_chunk

        def fill(module: Any, field: str) -> None:
            for mb in micro_batches(rows, self.cfg.optim.micro_batch):
                with autocast(self.device):
                    logp = token_logprobs(module, pad_rows(mb, self.pad_id).to(self.device), temp, chunk)
                for i, r in enumerate(mb):
                    setattr(r, field, logp[i, : len(r.input_ids)].float().cpu().tolist())

        if recompute_old:
            fill(self.model, "old_logprobs")
        if self.g.kl_coef > 0:
            with self.reference.active() as ref:
                fill(ref, "ref_logprobs")
        self.model.train()

    def loss_normaliser(self, rows: list[Row]) -> float:
        """The token-mean's divisor: the batch's trained tokens (all ranks); or, with
        `loss_norm=constant` (Dr. GRPO), the same number at every step of the run: the most
        tokens a step's rollouts could generate at the curriculum's largest horizon, i.e.
        tasks_per_step x samples_per_task x max_new_tokens x that horizon."""
        cfg = self.cfg
        if self.g.loss_norm == "constant":
            rollouts = cfg.tasks_per_step * cfg.samples_per_task
            return float(rollouts * cfg.sampling.max_new_tokens * self.curriculum.max_horizon)
        (n_tok,) = self.dist.sum([sum(sum(r.loss_mask[1:]) for r in rows)])
        return float(max(n_tok, 1))

    def surrogate_loss(self, rows: list[Row], backward: bool = False, current_as_old: bool = False) -> dict[str, float]:
        """The GRPO loss of `rows` (gradients accumulated when `backward`), with its statistics.

        Rows whose advantage is 0 add nothing to the loss or its gradient when there is no
        KL term, so they are not run through the model; their tokens still count in the
        token-mean's denominator, which keeps the loss exactly GRPO's. Of several ranks,
        `rows` is this rank's share: the denominator and the statistics are the whole batch's.
        """
        g, o = self.g, self.cfg.optim
        norm = self.loss_normaliser(rows)
        gigpo = g.step_weight > 0
        active = [r for r in rows if r.advantage != 0.0 or g.kl_coef > 0 or (gigpo and any(r.token_advantages))]
        out = {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "ratio_mean": 0.0}
        counted = 0.0
        for mb in micro_batches(active, o.micro_batch):
            batch = pad_rows(mb, self.pad_id).to(self.device)
            with autocast(self.device), torch.set_grad_enabled(backward):
                logp = token_logprobs(self.model, batch, self.cfg.sampling.temperature, o.logprob_chunk)
                old = logp.detach() if current_as_old else batch.old_logprobs
                adv = batch.token_advantages if gigpo else batch.advantages
                per_tok, ratio = clipped_token_loss(logp, old, adv, g.eps_low, g.eps_high)
                mask = batch.loss_mask
                kl = kl_k3(logp, batch.ref_logprobs) if g.kl_coef > 0 else torch.zeros_like(logp)
                loss = ((per_tok + g.kl_coef * kl) * mask).sum() / norm
            if backward:
                loss.backward()
            with torch.no_grad():
                out["loss"] += float(loss)
                out["kl"] += float((kl * mask).sum())
                clipped = ((ratio < 1 - g.eps_low) | (ratio > 1 + g.eps_high)).float()
                out["clip_frac"] += float((clipped * mask).sum())
                out["ratio_mean"] += float((ratio * mask).sum())
                counted += float(mask.sum())
        keys = ("loss", "kl", "clip_frac", "ratio_mean")
        *sums, counted = self.dist.sum([*(out[k] for k in keys), counted])
        out = dict(zip(keys, sums, strict=True))
        for k in ("kl", "clip_frac", "ratio_mean"):
            out[k] = out[k] / counted if counted else (1.0 if k == "ratio_mean" else 0.0)
        return out
