"""A training run's compute budget: what it counts, how much a step used, where it ends.

With `compute.total` set, a run is not `steps` long but as long as its budget: it ends at
the first step boundary where the compute used reaches the total (the overshoot, the
last step's excess, is reported), the LR schedule and the curriculum are functions of the
fraction of the budget used, and evaluations run (and checkpoints are kept) when the
fraction crosses each of `compute.eval_at`. Arms of an experiment that count the same unit
therefore get equal compute whatever their horizons (`agentgym experiment`).

The units count what the rollouts used, aborted episodes included (their compute was spent):

- ``generated_tokens``: tokens the policy sampled (the cost of generation and of the update);
- ``episodes``: rollouts (a fixed number per step: the budget is then a number of steps);
- ``env_steps``: turns, i.e. actions the environments executed (the interaction cost).

Example:
    >>> meter = ComputeMeter(ComputeConfig(total=1000, unit="episodes", eval_at=[0.5]))
    >>> meter.add(600.0), meter.fraction, meter.exhausted
    ([0.5], 0.6, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agentgym.config import ConfigError, help_field
from agentgym.trajectory import Trajectory

__all__ = ["UNITS", "ComputeConfig", "ComputeMeter", "compute_cost"]

UNITS = ("generated_tokens", "episodes", "env_steps")


@dataclass
class ComputeConfig:
    total: float | None = help_field(
        None,
        "the compute budget: the run ends at the first step boundary where it has used this much, and the LR "
        "schedule and curriculum follow the fraction used (null: the run is `steps` steps)",
    )
    unit: Literal["generated_tokens", "episodes", "env_steps"] = help_field(
        "generated_tokens",
        "what the budget counts over every rollout: generated_tokens (sampled by the policy), episodes, or "
        "env_steps (turns the envs executed)",
    )
    eval_at: list[float] = help_field(
        [], "fractions of the budget (0 < f < 1) after which to evaluate and keep a checkpoint; the end is 1"
    )

    def __post_init__(self) -> None:
        if self.total is not None and self.total <= 0:
            raise ConfigError(f"compute.total must be > 0 (or null for a run of `steps` steps), got {self.total}")
        bad = [f for f in self.eval_at if not 0 < f < 1]
        if bad:
            raise ConfigError(
                f"compute.eval_at: fractions must lie strictly between 0 and 1, got {bad} (the start is "
                "eval.at_start, the end eval.at_end)"
            )
        if self.eval_at and self.total is None:
            raise ConfigError("compute.eval_at needs compute.total: the fractions are of the budget")
        self.eval_at = sorted(set(self.eval_at))


def compute_cost(trajs: Sequence[Trajectory], unit: str) -> float:
    """What a batch of rollouts used, in `unit` (aborted episodes included)."""
    if unit == "episodes":
        return float(len(trajs))
    if unit == "env_steps":
        return float(sum(t.turns for t in trajs))
    if unit == "generated_tokens":
        return float(sum(t.generated_tokens for t in trajs))
    raise ValueError(f"unknown compute unit {unit!r}; one of {UNITS}")


class ComputeMeter:
    """The compute a run has used against its budget (no budget: it only counts)."""

    def __init__(self, cfg: ComputeConfig, used: float = 0.0):
        self.cfg = cfg
        self.used = used

    @property
    def budgeted(self) -> bool:
        return self.cfg.total is not None

    @property
    def fraction(self) -> float:
        """The fraction of the budget used (0 without a budget); > 1 after the overshoot."""
        return self.used / self.cfg.total if self.cfg.total else 0.0

    @property
    def exhausted(self) -> bool:
        return self.budgeted and self.used >= self.cfg.total

    @property
    def overshoot(self) -> float:
        """How much the last step used past the budget (0 before it is reached)."""
        return max(0.0, self.used - self.cfg.total) if self.cfg.total else 0.0

    def add(self, cost: float) -> list[float]:
        """Count a step's cost; the evaluation points (`eval_at`) it crossed, before the end."""
        before = self.fraction
        self.used += cost
        if self.exhausted:
            return []  # the end's evaluation serves every point the last step crossed
        return [f for f in self.cfg.eval_at if before < f <= self.fraction]

    def points_left(self, before: float) -> list[float]:
        """`eval_at` points above `before` (a run that ended crossing them: the end serves them)."""
        return [f for f in self.cfg.eval_at if f > before]
