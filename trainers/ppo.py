"""PPO on multi-turn trajectories: a value head on the policy's last hidden state, GAE over
generated tokens only, clipped policy and value losses.

Environment tokens (observations, chat-template markers) are not actions: GAE runs over
the sequence of generated tokens of a whole rollout (across its segments), skipping every
env token, as if they were one long action sequence. Each turn's reward (`turn_rewards`)
sits on the last token of the action that produced it (the trajectory's spans; a SUPO
summary is never a turn).

    delta_t = r_t + gamma * V(t+1) - V(t);   A_t = delta_t + gamma * lam * A_{t+1};   R_t = A_t + V(t)

After the last generated token, V = 0 when the env ended the episode (success, failure).
A rollout cut by the turn cap or the window (over_turn, overlong) did not end: by default
it is left out of the loss (`ppo.mask_over_turn`, `ppo.mask_overlong`, as GRPO's
Mini-o3 masks); with a mask off it is trained and bootstraps from the value estimate
after its last generated token (the observation that followed the cut is never
tokenised, so that state is the last one the record holds).

V(t) is the value of the state that token t is generated from: the head reads the
hidden state at position t - 1. Losses: the clipped surrogate on A (token-mean), and
0.5 * max((V - R)^2, (V_old + clip(V - V_old, +-value_clip) - R)^2) weighted by
`value_coef`. Old log-probs and old values come from one no-grad pass under the
pre-update weights.

Data-parallel: GAE runs per rollout on the rank that collected it; the advantage
whitening, the token-mean of both losses, the statistics and the gradients use the whole
batch over the ranks (the single-process update on the union of their rollouts).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from agentgym.trainers.common import (
    Row,
    autocast,
    clip_and_step,
    cut_masked,
    pad_rows,
    rows_from_trajectories,
    token_logprobs,
)
from agentgym.trainers.distributed import Dist
from agentgym.trainers.grpo import clipped_token_loss
from agentgym.trainers.loop import Trainer

from agentgym.config import help_field
from agentgym.trajectory import Trajectory

__all__ = ["PPOConfig", "PPOTrainer", "gae", "rollout_advantages", "trained_rollouts"]


@dataclass
class PPOConfig:
    """PPO's settings: the section `ppo` (`algo: ppo`)."""

    gamma: float = help_field(1.0, "discount over generated tokens")
    lam: float = help_field(0.95, "GAE lambda")
    value_clip: float = help_field(0.2, "clip of the value change against the pre-update values")
    value_coef: float = help_field(0.5, "weight of the value loss")
    eps_low: float = help_field(0.2, "lower clip of the ratio")
    eps_high: float = help_field(0.2, "upper clip of the ratio")
    normalize_advantages: bool = help_field(True, "whiten advantages over the batch's generated tokens")
    mask_over_turn: bool = help_field(
        True,
        "Mini-o3: rollouts that hit the turn cap get no loss; off: they train and bootstrap from the value "
        "after their last generated token",
    )
    mask_overlong: bool = help_field(
        True, "overlong rollouts (context full) get no loss; off: they train and bootstrap as over-turn ones"
    )
    mask_aborted: bool = help_field(True, "leave aborted rollouts out of the loss")


def gae(
    rewards: list[float], values: list[float], gamma: float, lam: float, last_value: float = 0.0
) -> tuple[list[float], list[float]]:
    """Generalised advantage estimates and returns over one sequence of actions; the value
    after the last action is `last_value` (0: the episode ended there). Pass generated
    tokens only: env tokens are not steps."""
    adv = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else last_value
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, [a + v for a, v in zip(adv, values, strict=True)]


def rollout_advantages(rows: list[Row], gamma: float, lam: float, normalize: bool, dist: Dist | None = None) -> None:
    """Fill `token_advantages` and `returns` of `rows` (which carry `old_values`): GAE per
    rollout over its generated tokens, in order across its segments; env tokens get 0. A
    cut rollout (`Row.cut`) bootstraps from the `end_value` of its last trained row.
    With `normalize`, advantages are whitened over every generated token of the batch (of
    every rank's `rows`, with `dist` of several ranks)."""
    by_traj: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        by_traj[r.traj_index].append(r)
    for traj_rows in by_traj.values():
        where = [(r, t) for r in traj_rows for t, m in enumerate(r.loss_mask) if m]
        last = where[-1][0] if where else None
        bootstrap = last.end_value if last is not None and last.cut else 0.0
        rewards, values = [r.token_rewards[t] for r, t in where], [r.old_values[t] for r, t in where]
        adv, ret = gae(rewards, values, gamma, lam, bootstrap)
        for r in traj_rows:
            r.token_advantages = [0.0] * len(r.input_ids)
            r.returns = [0.0] * len(r.input_ids)
        for (r, t), a, g in zip(where, adv, ret, strict=True):
            r.token_advantages[t] = a
            r.returns[t] = g
    if normalize:
        flat = torch.tensor([a for r in rows for a, m in zip(r.token_advantages, r.loss_mask, strict=True) if m])
        if dist is not None and dist.enabled:
            mean, std = _global_mean_std(flat, dist)
        elif flat.numel() > 1:
            mean, std = flat.mean().item(), flat.std().item()
        else:
            mean = std = None
        if std is not None:
            for r in rows:
                r.token_advantages = [
                    (a - mean) / (std + 1e-8) if m else 0.0
                    for a, m in zip(r.token_advantages, r.loss_mask, strict=True)
                ]


def _global_mean_std(flat: torch.Tensor, dist: Dist) -> tuple[float | None, float | None]:
    """Mean and sample std of the union of every rank's `flat` (None, None under two values)."""
    total, n = dist.sum([float(flat.double().sum()), flat.numel()])
    if n < 2:
        return None, None
    mean = total / n
    (squares,) = dist.sum([float(((flat.double() - mean) ** 2).sum())])
    return mean, (squares / (n - 1)) ** 0.5


def trained_rollouts(trajs: list[Trajectory], cfg: PPOConfig) -> list[bool]:
    """Which rollouts the loss sees: not aborted ones (`mask_aborted`), nor ones cut by the
    turn cap or the window while their mask is on (`mask_over_turn`, `mask_overlong`)."""
    return [not ((cfg.mask_aborted and t.end_reason == "aborted") or cut_masked(t.end_reason, cfg)) for t in trajs]


class PPOTrainer(Trainer):
    """PPO with a scalar value head sharing the policy's body."""

    Config = PPOConfig

    def extra_modules(self) -> dict[str, torch.nn.Module]:
        hidden = self.model.config.get_text_config().hidden_size
        head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(head.weight)  # start from V = 0: no spurious early advantages
        torch.nn.init.zeros_(head.bias)
        return {"value_head": head.to(self.device)}

    def forward(self, batch: Any, grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token log-probs and values, both aligned with the tokens (value of token t's state),
        and the values after each token (`after[:, t]`: the state that token t completes)."""
        with autocast(self.device), torch.set_grad_enabled(grad):
            logp, hidden = token_logprobs(
                self.model, batch, self.cfg.sampling.temperature, self.cfg.optim.logprob_chunk, return_hidden=True
            )
            after = self.modules["value_head"](hidden.float()).squeeze(-1)
        values = torch.cat([torch.zeros_like(after[:, :1]), after[:, :-1]], dim=1)
        return logp, values, after

    def update(self, trajs: list[Trajectory], horizon: int) -> dict[str, float]:
        p, o = self.algo_config(), self.cfg.optim
        rows = [r for r in rows_from_trajectories(trajs, trained=trained_rollouts(trajs, p)) if any(r.loss_mask)]
        (n_rows,) = self.dist.sum([len(rows)])  # every rank takes the same path: collectives must match
        metrics: dict[str, float] = {"rows_trained": n_rows}
        if not n_rows:
            metrics["grad_norm"] = clip_and_step(self.optimizer, self.scheduler, o.max_grad_norm)
            return metrics
        self.prepare(rows)
        rollout_advantages(rows, p.gamma, p.lam, p.normalize_advantages, self.dist)
        metrics.update(self.optimize(rows, lambda mb: self.loss(mb, backward=True)))
        return metrics

    @torch.no_grad()
    def prepare(self, rows: list[Row]) -> None:
        """Old log-probs and old values under the pre-update weights, and each row's value
        after its last generated token (a cut rollout's bootstrap)."""
        mode = self.ratio_reference()
        if mode == "behaviour":
            self.fill_behaviour(rows)
        self.model.eval()
        for mb in self.micro_batches(rows):
            if not mb:  # sharded: this rank's share of the passes is done
                self.padding_pass(self.model, backward=False)
                continue
            logp, values, after = self.forward(pad_rows(mb, self.pad_id).to(self.device), grad=False)
            for i, r in enumerate(mb):
                n = len(r.input_ids)
                if mode not in ("rollout", "behaviour"):
                    r.old_logprobs = logp[i, :n].float().cpu().tolist()
                r.old_values = values[i, :n].float().cpu().tolist()
                last = max(t for t, m in enumerate(r.loss_mask) if m)
                r.end_value = float(after[i, last])
        self.model.train()

    def loss(self, rows: list[Row], backward: bool = False) -> dict[str, float]:
        """Token-mean clipped policy loss + value_coef x clipped value loss over `rows` (this
        rank's share: the token count and the statistics are the whole batch's)."""
        p = self.algo_config()
        (n_tok,) = self.dist.sum([sum(sum(r.loss_mask[1:]) for r in rows)])
        norm = float(max(n_tok, 1))
        keys = ("loss", "policy_loss", "value_loss", "ratio_mean", "value_mean")
        out = dict.fromkeys(keys, 0.0)  # a rank without rows still reports (and sums) every key
        for mb in self.micro_batches(rows):
            if not mb:  # sharded: this rank's share of the passes is done
                self.padding_pass(self.model, backward)
                continue
            batch = pad_rows(mb, self.pad_id).to(self.device)
            logp, values, _ = self.forward(batch, grad=backward)
            mask = batch.loss_mask
            with torch.set_grad_enabled(backward):
                per_tok, ratio = clipped_token_loss(
                    logp, batch.old_logprobs, batch.token_advantages, p.eps_low, p.eps_high
                )
                clipped_v = batch.old_values + (values - batch.old_values).clamp(-p.value_clip, p.value_clip)
                v_loss = 0.5 * torch.max((values - batch.returns) ** 2, (clipped_v - batch.returns) ** 2)
                pg = (per_tok * mask).sum() / norm
                vf = (v_loss * mask).sum() / norm
                loss = pg + p.value_coef * vf
            if backward:
                loss.backward()
            out["loss"] += float(loss.detach())
            out["policy_loss"] += float(pg.detach())
            out["value_loss"] += float(vf.detach())
            out["ratio_mean"] += float((ratio.detach() * mask).sum()) / norm
            out["value_mean"] += float((values.detach() * mask).sum()) / norm
        return dict(zip(keys, self.dist.sum([out[k] for k in keys]), strict=True))
