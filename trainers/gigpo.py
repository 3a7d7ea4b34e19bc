"""GiGPO's step-level advantages (Feng et al. 2025, "Group-in-Group Policy Optimization
for LLM Agent Training"), on top of GRPO's episode-level ones.

Rollouts of the same task often pass through the same state: every one of them starts
from the task's first observation, and two that made the same moves see the same
feedback. GiGPO groups the turns of a task's G rollouts by that *anchor state* and
compares, inside each such step group, the discounted return from the turn on:

    R_t = sum_{k >= t} gamma^(k - t) r_k        A_S(t) = (R_t - mean(R)) / (std(R) + eps)

A generated token of turn t then gets A_E + omega * A_S(t), where A_E is the rollout's
GRPO advantage (`gigpo.step_weight` = omega; 0 is GRPO).  `algo: gigpo` trains with it:
`GiGPOTrainer` is GRPO's trainer with these advantages, `GiGPOConfig` GRPO's settings
plus the step-level ones. With sparse success
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

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentgym.trainers.common import Row
from agentgym.trainers.grpo import GRPOConfig, GRPOTrainer, relative

from agentgym.config import ConfigError, help_field
from agentgym.trajectory import Trajectory

__all__ = ["GiGPOConfig", "GiGPOTrainer", "step_advantages", "token_advantages", "turn_anchors"]


@dataclass
class GiGPOConfig(GRPOConfig):
    """GiGPO's settings: GRPO's, and the step level's (the section `gigpo`, `algo: gigpo`)."""

    step_weight: float = help_field(
        1.0, "omega: weight of the step-level advantage from turns that share a state (the paper's 1; 0 is GRPO)"
    )
    step_gamma: float = help_field(0.95, "discount of the step returns (shorter successes score higher)")
    step_anchor: Literal["history", "observation"] = help_field(
        "history", "a turn's state = every observation so far (exact) or only the latest one (verl-agent)"
    )

    def __post_init__(self) -> None:
        if self.step_weight < 0 or not 0.0 < self.step_gamma <= 1.0:
            raise ConfigError("gigpo.step_weight must be >= 0 and gigpo.step_gamma in (0, 1]")


class GiGPOTrainer(GRPOTrainer):
    """GRPO whose tokens of turn t get A_E + omega * A_S(t) (see the module docstring)."""

    Config = GiGPOConfig

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.token_level = self.g.step_weight > 0

    def advantages(self, trajs: list[Trajectory], groups: list[int]) -> tuple[list[float], list[Row], dict[str, float]]:
        adv, rows, metrics = super().advantages(trajs, groups)
        if not self.token_level:
            return adv, rows, metrics
        included = [not (self.g.mask_aborted and t.end_reason == "aborted") for t in trajs]
        step, info = step_advantages(trajs, groups, included, self.g)
        token_advantages(rows, adv, step, self.g.step_weight)
        shared, in_groups, steps = self.dist.sum([info[k] for k in ("step_groups", "steps_in_step_groups", "steps")])
        metrics["step_groups"] = shared
        metrics["step_group_share"] = in_groups / max(steps, 1.0)  # turns whose state another rollout shared
        return adv, rows, metrics


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
    trajs: Sequence[Trajectory], groups: Sequence[int], included: Sequence[bool], cfg: GiGPOConfig
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
        for (i, t), a in zip(places, relative([returns[i][t] for i, t in places], cfg), strict=True):
            out[i][t] = a
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
