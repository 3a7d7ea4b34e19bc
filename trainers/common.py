"""The trainers' shared core: rows from trajectories, padded batches, token log-probs,
the model (full or LoRA), the optimizer and its LR schedule.

A *row* is one segment of one trajectory: its tokens, a loss mask over them (1 on the
generated tokens the update trains on), the rollout-time log-probs, and whatever the
algorithm attaches per row (GRPO: one advantage; PPO: per-token rewards).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from agentgym.trainers.config import LoraConfig, OptimConfig
from agentgym.trainers.logprobs import token_logprobs

from agentgym.policy import load_model
from agentgym.trajectory import Span, Trajectory

__all__ = [
    "CUT",
    "PER_TOKEN",
    "Batch",
    "Row",
    "autocast",
    "build_optimizer",
    "build_trainable_model",
    "clip_and_step",
    "cut_masked",
    "masked_mean",
    "micro_batches",
    "pad_rows",
    "rows_from_trajectories",
    "token_logprobs",
]


@dataclass
class Row:
    """One training sequence (a trajectory segment); per-token lists align with `input_ids`.

    Attributes:
        input_ids: prompt + completion tokens.
        loss_mask: 1 where the loss applies (generated tokens of a trained rollout).
        old_logprobs: rollout-time log-probs (0 on non-generated tokens), or recomputed ones.
        advantage: the row's scalar advantage (GRPO; every generated token gets it).
        token_rewards: per-token rewards (each turn's reward on the last token of its action).
        traj_index: which trajectory it came from.
        segment: which of its segments this row is.
        spans: the segment's generated replies (`Span`s), positions in `input_ids`.
        cut: the rollout was cut by the turn cap or the window (over_turn, overlong): its
            last state is not terminal.
        ref_logprobs: log-probs under the frozen reference model (KL).
        old_values, token_advantages, returns: PPO's values before the update, GAE
            advantages and value targets.
        end_value: PPO: the value after the row's last generated token (a cut rollout's
            bootstrap).
    """

    input_ids: list[int]
    loss_mask: list[int]
    old_logprobs: list[float]
    advantage: float = 0.0
    token_rewards: list[float] = field(default_factory=list)
    traj_index: int = 0
    segment: int = 0
    spans: list[Span] = field(default_factory=list)
    cut: bool = False
    ref_logprobs: list[float] = field(default_factory=list)
    old_values: list[float] = field(default_factory=list)
    token_advantages: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    end_value: float = 0.0


#: Per-token float fields of a `Row`, padded with zeros into `Batch` tensors of the same name.
PER_TOKEN = ("loss_mask", "old_logprobs", "token_rewards", "ref_logprobs", "old_values", "token_advantages", "returns")

#: End reasons of rollouts that were cut short, not ended by the env.
CUT = ("over_turn", "overlong")


def cut_masked(end_reason: str, cfg: Any) -> bool:
    """Whether a rollout is left out of the loss by the over-turn (Mini-o3) or overlong
    switch of an algorithm's config (`mask_over_turn`, `mask_overlong`)."""
    return (cfg.mask_over_turn and end_reason == "over_turn") or (cfg.mask_overlong and end_reason == "overlong")


def rows_from_trajectories(
    trajs: list[Trajectory], advantages: list[float] | None = None, trained: list[bool] | None = None
) -> list[Row]:
    """One row per segment. Every segment of a rollout shares its advantage (SUPO); a rollout
    that is not `trained` (masked) keeps its tokens but gets an all-zero loss mask. Each
    answered turn's reward sits on the last token of the action that produced it, as the
    trajectory's spans record (a summary is never a turn)."""
    rows = []
    for i, traj in enumerate(trajs):
        keep = trained[i] if trained is not None else True
        answered = traj.turn_spans()
        unpaid = [t for t, r in enumerate(traj.turn_rewards) if r and t not in answered]
        if unpaid:
            raise ValueError(
                f"trajectory {traj.task_id!r} (sample {traj.sample}): turns {unpaid} earned rewards but no recorded "
                "action span produced them; trajectories must record their spans (the rollout does; "
                "load_trajectories derives them for older files)"
            )
        for j, seg in enumerate(traj.segments):
            n_prompt = len(seg.prompt_ids)
            spans = [Span(n_prompt + s.start, n_prompt + s.end, s.kind, s.turn, s.message) for s in seg.spans]
            rewards = [0.0] * len(seg.input_ids)
            for span in spans:
                if span.kind == "action" and span.turn is not None and span.turn < len(traj.turn_rewards):
                    rewards[span.end - 1] += traj.turn_rewards[span.turn]
            rows.append(
                Row(
                    input_ids=list(seg.input_ids),
                    loss_mask=[0] * n_prompt + [m if keep else 0 for m in seg.loss_mask],
                    old_logprobs=[0.0] * n_prompt + list(seg.logprobs),
                    advantage=advantages[i] if advantages is not None else 0.0,
                    token_rewards=rewards,
                    traj_index=i,
                    segment=j,
                    spans=spans,
                    cut=traj.end_reason in CUT,
                )
            )
    return rows


@dataclass
class Batch:
    """Right-padded tensors of a list of rows (B x T). Per-token tensors are aligned with
    `input_ids`: position t holds the value for token t (predicted from positions < t);
    fields a row left empty are zeros."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    advantages: torch.Tensor  # B, one per row
    loss_mask: torch.Tensor
    old_logprobs: torch.Tensor
    token_rewards: torch.Tensor
    ref_logprobs: torch.Tensor
    old_values: torch.Tensor
    token_advantages: torch.Tensor
    returns: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def pad_rows(rows: list[Row], pad_id: int) -> Batch:
    width = max(len(r.input_ids) for r in rows)
    n = len(rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    per_token = {name: torch.zeros((n, width), dtype=torch.float32) for name in PER_TOKEN}
    for i, r in enumerate(rows):
        k = len(r.input_ids)
        ids[i, :k] = torch.tensor(r.input_ids)
        attn[i, :k] = 1
        for name, tensor in per_token.items():
            values = getattr(r, name)
            if values:
                tensor[i, :k] = torch.tensor(values, dtype=torch.float32)
    # Token 0 is never predicted: nothing to train there even if a mask says so.
    per_token["loss_mask"][:, 0] = 0
    adv = torch.tensor([r.advantage for r in rows], dtype=torch.float32)
    return Batch(ids, attn, adv, **per_token)


def micro_batches(rows: list[Row], size: int) -> list[list[Row]]:
    """Rows in groups of `size`, sorted by length so that padding stays small."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
    return [[rows[i] for i in order[s : s + size]] for s in range(0, len(order), size)]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def build_trainable_model(
    model_name: str, dtype: str, device: str | None, lora: LoraConfig, gradient_checkpointing: bool = False
) -> tuple[Any, Any]:
    """(model, tokenizer) ready to train: full fine-tune, or a peft LoRA adapter; with
    `gradient_checkpointing`, each layer's activations are recomputed in the backward pass.

    `dtype="auto"` means float32 weights here, also on GPUs: the forward runs under bf16
    autocast there, while AdamW updates full-precision weights (bf16 weights lose small updates).
    """
    model, tokenizer = load_model(model_name, dtype="float32" if dtype == "auto" else dtype, device=device)
    if lora.enabled:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        model = get_peft_model(
            model,
            PeftLoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=list(lora.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
    if gradient_checkpointing:
        # Non-reentrant: correct with frozen embeddings (LoRA) without enable_input_require_grads.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model, tokenizer


def build_optimizer(
    params: list[Any],
    cfg: OptimConfig,
    total_steps: int,
    lr: float | None = None,
    progress: Callable[[], float] | None = None,
) -> tuple[Any, Any]:
    """AdamW over `params` and a LambdaLR schedule: warm-up over `cfg.warmup_steps`
    optimizer steps, then constant, linear or cosine decay to 0 at `total_steps` optimizer
    steps, or, given `progress` (the fraction of a compute budget used, read at each
    scheduler step), at the end of the budget."""
    opt = torch.optim.AdamW(params, lr=lr or cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    warm, total = cfg.warmup_steps, max(total_steps, 1)

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        done = progress() if progress is not None else (step - warm) / max(1, total - warm)
        done = min(1.0, max(0.0, done))
        return 1.0 - done if cfg.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * done))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def clip_and_step(opt: Any, sched: Any, max_grad_norm: float) -> float:
    """Clip gradients, take one optimizer and one scheduler step; the gradient norm before clipping."""
    params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
    norm = 0.0
    if params:  # with no gradient at all, the optimizer step is a no-op and the schedule still advances
        limit = max_grad_norm if max_grad_norm > 0 else float("inf")
        if any(hasattr(p, "full_tensor") for p in params):
            norm = _clip_sharded(params, limit)
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, limit)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return float(norm)


def _clip_sharded(params: list[Any], limit: float) -> torch.Tensor:
    """`clip_grad_norm_` over sharded (DTensor) weights and plain ones together (a PPO value
    head beside an FSDP2 model): the norm of each kind over every rank, then one clip."""
    sharded = [p.grad for p in params if hasattr(p, "full_tensor")]
    plain = [p.grad for p in params if not hasattr(p, "full_tensor")]
    norm = torch.nn.utils.get_total_norm(sharded).full_tensor().float()
    if plain:
        norm = torch.linalg.vector_norm(torch.stack([norm, torch.nn.utils.get_total_norm(plain).float()]))
    coef = float(torch.clamp(limit / (norm + 1e-6), max=1.0))  # as clip_grad_norm_ computes it
    for p in params:
        p.grad.mul_(coef)
    return norm


def autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA (GPUs train in bf16); a no-op context on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)
