"""GiGPO's step-level advantages (Feng et al. 2025, "Group-in-Group Policy Optimization
for LLM Agent Training"), on top of GRPO's episode-level ones.

Rollouts of the same task often pass through the same state: every one of them starts
from the task's first observation, and two that made the same moves see the same
feedback. GiGPO groups the turns of a task's G rollouts by that *anchor state* and
compares, inside each such step group, the discounted return from the turn on:

    R_t = sum_{k >= t} gamma^(k - t) r_k        A_S(t) = (R_t - mean(R)) / (std(R) + eps)

A generated token of turn t then gets A_E + omega * A_S(t), where A_E is the rollout's
GRPO advantage (`grpo.step_weight` = omega; 0 turns GiGPO off). With sparse success
rewards the discount makes a shorter success better than a longer one from the same
state, which is what "interacting well" means.

Anchors come from the conversation: `observation` is the observation the turn answered
(verl-agent's choice, right when an observation describes the whole state), `history`
is every observation so far (exact for deterministic envs: same task, same observations,
same state). A step group of one has advantage 0. A rollout whose turns cannot be matched
to its generated spans (a SUPO summary adds a reply that is not a turn) keeps A_E only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from agentgym.trainers.common import Row

from agentgym.train_config import GRPOConfig
from agentgym.trajectory import Trajectory

__all__ = ["step_advantages", "token_advantages", "turn_anchors"]


def turn_anchors(traj: Trajectory, kind: str = "history") -> list[str] | None:
    """The anchor state of each turn, or None when replies and turns do not match up."""
    anchors: list[str] = []
    seen: list[str] = []
    for m in traj.messages:
        if m["role"] == "user":
            seen.append(m["content"])
        elif m["role"] == "assistant":
            if not seen:
                return None
            anchors.append(seen[-1] if kind == "observation" else "\x1e".join(seen))
    return anchors if len(anchors) == len(traj.turn_rewards) else None


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    out, acc = [0.0] * len(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out


def step_advantages(
    trajs: Sequence[Trajectory], groups: Sequence[int], included: Sequence[bool], cfg: GRPOConfig
) -> tuple[list[list[float] | None], dict[str, float]]:
    """Per rollout, the step advantage of each turn (None: no anchors, so A_E only).

    Only `included` rollouts (not aborted) join the step groups; step groups never mix
    tasks (`groups`: the rollout's GRPO group).
    """
    anchors = [turn_anchors(t, cfg.step_anchor) if ok else None for t, ok in zip(trajs, included, strict=True)]
    returns = [discounted_returns(t.turn_rewards, cfg.step_gamma) for t in trajs]
    members: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
    for i, a in enumerate(anchors):
        for t, key in enumerate(a or []):
            members[(groups[i], key)].append((i, t))
    out: list[list[float] | None] = [[0.0] * len(a) if a is not None else None for a in anchors]
    shared = 0
    for places in members.values():
        if len(places) < 2:
            continue
        shared += 1
        r = [returns[i][t] for i, t in places]
        mean = sum(r) / len(r)
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - 1))
        for (i, t), x in zip(places, r, strict=True):
            out[i][t] = (x - mean) / (std + cfg.eps) if cfg.advantage_std else x - mean
    steps = sum(len(a) for a in anchors if a is not None)
    info = {
        "step_groups": float(shared),
        "steps_in_step_groups": float(sum(len(p) for p in members.values() if len(p) > 1)),
        "steps": float(steps),
    }
    return out, info


def token_advantages(
    rows: Sequence[Row], episode: Sequence[float], step: Sequence[list[float] | None], weight: float
) -> None:
    """Fill each row's `token_advantages`: A_E + weight * A_S(turn) on the generated tokens
    of each turn (turns are the runs of 1s in the loss mask, counted across a rollout's
    segments in order); A_E alone for rollouts without step advantages."""
    turn_of: dict[int, int] = defaultdict(int)
    for row in rows:
        i = row.traj_index
        a_e, a_s = episode[i], step[i]
        values = [0.0] * len(row.input_ids)
        mask = row.loss_mask
        for p, m in enumerate(mask):
            if not m:
                continue
            t = turn_of[i]
            values[p] = a_e + (weight * a_s[t] if a_s is not None and t < len(a_s) else 0.0)
            if p + 1 == len(mask) or not mask[p + 1]:
                turn_of[i] = t + 1
        row.token_advantages = values
