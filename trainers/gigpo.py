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
same state). A step group of one has advantage 0. Turns and their tokens come from the
trajectory's spans, so SUPO summaries (replies that are not turns) never shift a turn; a
rollout that does not record its spans keeps A_E only.
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
    """The anchor state of each answered turn, or None when the trajectory does not record
    which reply produced each turn and where it sits in the conversation.

    The state a turn acts in is made of env observations only: the task, then the
    observation each earlier action received (the message right after that action). A
    summary, its request and the context it opens are the policy's own, never state.
    """
    answered = traj.turn_spans()
    n = len(traj.turn_rewards)
    if sorted(answered) != list(range(n)) or any(span.message is None for _, span in answered.values()):
        return None
    messages = traj.messages
    observations = [messages[1]["content"]] if len(messages) > 1 else []
    for t in range(n - 1):
        m = answered[t][1].message + 1
        if m >= len(messages) or messages[m]["role"] != "user":
            return None
        observations.append(messages[m]["content"])
    if len(observations) < n:
        return None
    return [observations[t] if kind == "observation" else "\x1e".join(observations[: t + 1]) for t in range(n)]


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
    """Fill each row's `token_advantages`: A_E on every trained token, plus weight * A_S(t)
    on the tokens of the action that produced turn t (the rows' spans say which tokens
    those are; summaries and unanswered actions get A_E alone); A_E alone for rollouts
    without step advantages."""
    for row in rows:
        i = row.traj_index
        a_e, a_s = episode[i], step[i]
        values = [a_e if m else 0.0 for m in row.loss_mask]
        for span in row.spans if a_s is not None else ():
            if span.kind == "action" and span.turn is not None and span.turn < len(a_s):
                for p in range(span.start, span.end):
                    if row.loss_mask[p]:
                        values[p] += weight * a_s[span.turn]
        row.token_advantages = values
