"""GRPO on multi-turn trajectories (with the DAPO, Dr. GRPO and Mini-o3 switches).

For each task, G rollouts; each rollout's advantage is its reward relative to its group:

    A_i = (R_i - mean(R)) / (std(R) + eps)          (Dr. GRPO: no division by std)

Every generated token of every segment of rollout i gets A_i (SUPO: segments share it).
The loss is PPO's clipped surrogate with asymmetric clipping, averaged over the batch's
generated tokens (DAPO's token-mean), plus beta times the k3 KL to the frozen policy RL
started from (after any warm start; `trainers/reference.py`) when `kl_coef > 0`:

    L = sum_t [ -min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A) + beta * KL_k3(t) ] / N_tokens

(`grpo_loss`; the advantages, ratio, clipping, KL and normaliser are in one screen below).

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
policies report none. With `async_steps: 1` the batch was sampled by the weights of one
update ago: the ratio's reference is theirs, computed by the training forward on the
sampler's copy before it synced ("behaviour", `Trainer.ratio_reference`).

GiGPO (`algo: gigpo`, `trainers/gigpo.py`) extends this trainer: each generated token of
turn t gets A_E + omega * A_S(t), a step-level advantage from the turns of the group's
rollouts that share turn t's state.

Data-parallel: each rank holds whole groups, so advantages are exact locally; the token
count of the token-mean and the update statistics are summed over the ranks, and so are the
gradients (`Trainer.optimizer_step`): the update is the single-process update on the
union of the ranks' rollouts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from agentgym.trainers.common import (
    Row,
    autocast,
    cut_masked,
    pad_rows,
    rows_from_trajectories,
    token_logprobs,
)
from agentgym.trainers.loop import Trainer
from agentgym.trainers.reference import Reference

from agentgym.config import ConfigError, help_field
from agentgym.trajectory import Trajectory

__all__ = ["GRPOConfig", "GRPOTrainer", "clipped_token_loss", "group_advantages", "grpo_loss", "kl_k3", "relative"]


@dataclass
class GRPOConfig:
    """GRPO's settings: the section `grpo` (`algo: grpo`)."""

    advantage_std: bool = help_field(True, "divide by the group's std (GRPO); false = Dr. GRPO")
    loss_norm: Literal["token_mean", "constant"] = help_field(
        "token_mean",
        "token_mean: over every generated token of the batch (DAPO); constant (Dr. GRPO): the same divisor "
        "every step, tasks_per_step x samples_per_task x sampling.max_new_tokens x the curriculum's largest horizon",
    )
    drop_equal_groups: bool = help_field(False, "DAPO: drop groups whose rewards are all equal (no signal)")
    eps_low: float = help_field(0.2, "lower clip of the ratio: 1 - eps_low")
    eps_high: float = help_field(0.28, "upper clip of the ratio: 1 + eps_high (DAPO's clip-higher)")
    kl_coef: float = help_field(
        0.0, "beta of the k3 KL to the frozen policy RL starts from, after any warm start (0 = no reference)"
    )
    mask_over_turn: bool = help_field(
        True, "Mini-o3: rollouts that hit the turn cap count in the group stats with reward 0, no loss"
    )
    mask_overlong: bool = help_field(True, "overlong rollouts (context full): group stats with reward 0, no loss")
    mask_aborted: bool = help_field(True, "aborted rollouts (env/infra failure): out of the group stats and the loss")
    eps: float = help_field(1e-6, "added to the std")

    def check(self, cfg: Any) -> None:
        """What GRPO needs of the rest of the training config."""
        if cfg.samples_per_task < 2:
            raise ConfigError("samples_per_task must be >= 2 for GRPO: advantages are relative to the group")


# ---------------------------------------------------------------------- the loss, in one screen


def relative(values: Sequence[float], cfg: GRPOConfig) -> list[float]:
    """Each value against its group's: (x - mean) / (std + eps), or x - mean without
    `advantage_std` (Dr. GRPO). The std is the sample std (n - 1), as in TRL and verl; a
    group of one has std 0."""
    mean = sum(values) / len(values)
    if not cfg.advantage_std:
        return [x - mean for x in values]
    std = math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return [(x - mean) / (std + cfg.eps) for x in values]


def group_advantages(
    rewards: Sequence[float], groups: Sequence[int], end_reasons: Sequence[str], cfg: GRPOConfig
) -> tuple[list[float], list[bool], dict[str, float]]:
    """Per-rollout advantages (`relative` to the rollout's group) and whether each rollout
    is trained.

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
        for i, a in zip(idx, relative(r, cfg), strict=True):
            adv[i] = a
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


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    norm: float,
    g: GRPOConfig,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRPO's loss on a batch of rows (rows x positions), and its statistics summed over `mask`:

        L = sum_t mask_t * ( -min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A) + beta * KL_k3(t) ) / norm

    rho_t = exp(logp_t - old_logp_t); A: the row's advantage, or (GiGPO) the token's; mask:
    the generated tokens that train; norm: the generated tokens of the whole batch (DAPO's
    token-mean, counted over every rank by the caller), or Dr. GRPO's constant.
    """
    per_token, ratio = clipped_token_loss(logp, old_logp, adv, g.eps_low, g.eps_high)
    kl = kl_k3(logp, ref_logp) if g.kl_coef > 0 else torch.zeros_like(logp)
    loss = ((per_token + g.kl_coef * kl) * mask).sum() / norm
    with torch.no_grad():
        clipped = ((ratio < 1 - g.eps_low) | (ratio > 1 + g.eps_high)).float()
        stats = {"kl": kl, "clip_frac": clipped, "ratio_mean": ratio}
        stats = {k: (v * mask).sum() for k, v in stats.items()} | {"tokens": mask.sum()}
    return loss, stats


# ---------------------------------------------------------------------- the trainer


class GRPOTrainer(Trainer):
    """GRPO: group-relative advantages, one per rollout, on every generated token."""

    Config = GRPOConfig
    #: Whether the loss reads `Row.token_advantages` (per token) instead of `Row.advantage`.
    token_level = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.g = self.algo_config()

    def build_reference(self) -> Reference | None:
        """The policy RL starts from (re-captured after a warm start), when `kl_coef > 0`: a
        bf16 copy on a GPU."""
        if self.algo_config().kl_coef <= 0:
            return None
        return Reference(self.model, torch.bfloat16 if self.device.type == "cuda" else None)

    def update(self, trajs: list[Trajectory], horizon: int) -> dict[str, float]:
        cfg = self.cfg
        groups = [i // cfg.samples_per_task for i in range(len(trajs))]
        _, rows, metrics = self.advantages(trajs, groups)
        mode = self.ratio_reference()
        if mode == "behaviour":
            self.fill_behaviour(rows)
        self.prepare(rows, recompute_old=mode == "recompute")
        metrics.update(
            self.optimize(rows, lambda mb: self.surrogate_loss(mb, backward=True, current_as_old=mode == "current"))
        )
        return metrics

    def advantages(self, trajs: list[Trajectory], groups: list[int]) -> tuple[list[float], list[Row], dict[str, float]]:
        """Each rollout's group-relative advantage, the rows that train (every segment of a
        trained rollout, each with its rollout's advantage), and their statistics (summed
        over the ranks)."""
        adv, trained, info = group_advantages([t.reward for t in trajs], groups, [t.end_reason for t in trajs], self.g)
        rows = [r for r in rows_from_trajectories(trajs, adv, trained) if any(r.loss_mask)]
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
        return adv, rows, metrics

    @torch.no_grad()
    def prepare(self, rows: list[Row], recompute_old: bool) -> None:
        """Fill old log-probs (pre-update weights) and reference log-probs where needed."""
        if (not rows and not self.dist.sharded) or (not recompute_old and self.g.kl_coef <= 0):
            return  # (sharded, a rank without rows still runs its share of padding passes)
        self.model.eval()  # no dropout in the reference passes
        temp, chunk = self.cfg.sampling.temperature, self.cfg.optim.logprob_chunk

        def fill(module: Any, field: str) -> None:
            for mb in self.micro_batches(rows):
                if not mb:  # sharded: this rank's share of the passes is done
                    self.padding_pass(module, backward=False)
                    continue
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
        per_token = self.token_level
        active = [r for r in rows if r.advantage != 0.0 or g.kl_coef > 0 or (per_token and any(r.token_advantages))]
        keys = ("loss", "kl", "clip_frac", "ratio_mean", "tokens")
        sums = dict.fromkeys(keys, 0.0)
        for mb in self.micro_batches(active):
            if not mb:  # sharded: this rank's share of the passes is done
                self.padding_pass(self.model, backward)
                continue
            batch = pad_rows(mb, self.pad_id).to(self.device)
            with autocast(self.device), torch.set_grad_enabled(backward):
                logp = token_logprobs(self.model, batch, self.cfg.sampling.temperature, o.logprob_chunk)
                old = logp.detach() if current_as_old else batch.old_logprobs
                adv = batch.token_advantages if per_token else batch.advantages
                loss, stats = grpo_loss(logp, old, adv, batch.loss_mask, norm, g, batch.ref_logprobs)
            if backward:
                loss.backward()
            for k, v in {"loss": loss.detach(), **stats}.items():
                sums[k] += float(v)
        # Of several ranks, the statistics are the whole batch's.
        total = dict(zip(keys, self.dist.sum([sums[k] for k in keys]), strict=True))
        counted = total.pop("tokens")
        out = {"loss": total.pop("loss")}
        for k, v in total.items():
            out[k] = v / counted if counted else (1.0 if k == "ratio_mean" else 0.0)
        return out
