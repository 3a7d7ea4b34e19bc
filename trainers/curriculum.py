"""Curricula over the horizon (the turn budget) of training rollouts.

A `Curriculum` answers one question per training step: how many turns may each rollout
of this batch take? Four schedules:

- ``fixed``: always ``start``.
- ``stepwise`` (AgentGym-RL's ScalingInter-RL): ``h_t = rounds[min(t // every, len(rounds) - 1)]``.
- ``multiplicative`` (TTI): ``start``, multiplied by ``factor`` every ``every`` steps, capped at ``max``.

With a compute budget (`compute.total`), the stepwise and multiplicative schedules raise at
fractions of the budget instead (``every_fraction``): the k-th raise comes at the first step
that starts with at least k x every_fraction of the budget used, so arms that differ in
horizon (hence in compute per step) change horizon at the same compute.
- ``adaptive``: raise the horizon to the next of ``rounds`` once the mean success rate (or
  the over-turn rate) of the last ``window`` batches crosses its threshold; it never goes down.

Example:
    >>> c = Curriculum(CurriculumConfig(kind="stepwise", rounds=[8, 12, 15], every=80))
    >>> [c.horizon(t) for t in (0, 79, 80, 500)]
    [8, 8, 12, 15]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agentgym.config import ConfigError, help_field

__all__ = ["Curriculum", "CurriculumConfig"]


@dataclass
class CurriculumConfig:
    kind: Literal["fixed", "stepwise", "multiplicative", "adaptive"] = help_field(
        "fixed", "fixed, stepwise (AgentGym-RL), multiplicative (TTI) or adaptive (on success/over-turn rate)"
    )
    start: int = help_field(8, "the horizon of fixed and multiplicative schedules at step 0")
    rounds: list[int] = help_field([8, 12, 15], "stepwise and adaptive: the horizons, in order")
    every: int = help_field(80, "stepwise and multiplicative: steps between raises")
    every_fraction: float | None = help_field(
        None,
        "stepwise and multiplicative with a compute budget (compute.total): the fraction of the budget between "
        "raises, instead of `every` steps",
    )
    factor: float = help_field(2.0, "multiplicative: the horizon's factor at each raise")
    max: int = help_field(30, "multiplicative: the largest horizon")
    success_above: float | None = help_field(0.6, "adaptive: raise when the success rate is above this (null: off)")
    over_turn_above: float | None = help_field(
        None, "adaptive: raise when the rate of episodes that hit the turn cap is above this (null: off)"
    )
    window: int = help_field(2, "adaptive: batches averaged before deciding")
    min_steps: int = help_field(1, "adaptive: least steps spent at a horizon before the next raise")

    def __post_init__(self) -> None:
        if self.start < 1 or self.max < 1:
            raise ConfigError(f"curriculum.start and curriculum.max must be >= 1, got {self.start}, {self.max}")
        if self.kind in ("stepwise", "adaptive") and (not self.rounds or any(h < 1 for h in self.rounds)):
            raise ConfigError(f"curriculum.rounds must be positive horizons, got {self.rounds}")
        if self.every < 1:
            raise ConfigError(f"curriculum.every must be >= 1, got {self.every}")
        if self.kind == "multiplicative" and self.factor <= 1.0:
            raise ConfigError(f"curriculum.factor must be > 1 for a multiplicative schedule, got {self.factor}")
        if self.kind == "adaptive" and self.success_above is None and self.over_turn_above is None:
            raise ConfigError("an adaptive curriculum needs curriculum.success_above or curriculum.over_turn_above")
        if self.every_fraction is not None and not 0 < self.every_fraction <= 1:
            raise ConfigError(f"curriculum.every_fraction must lie in (0, 1], got {self.every_fraction}")
        if self.window < 1:
            raise ConfigError(f"curriculum.window must be >= 1, got {self.window}")


class Curriculum:
    """The horizon schedule of a training run; its state goes into checkpoints.

    Call `horizon(step, metrics)` once per step, with the metrics of the previous batch
    (`success_rate`, `over_turn_rate`); schedules that do not adapt ignore them.
    """

    def __init__(self, cfg: CurriculumConfig):
        self.cfg = cfg
        self.level = 0  # adaptive: index into rounds
        self.since = 0  # adaptive: steps spent at the current level
        self.history: deque[Mapping[str, float]] = deque(maxlen=cfg.window)
        self.last_step: int | None = None

    @property
    def max_horizon(self) -> int:
        """The largest horizon the schedule can reach (whatever the number of steps)."""
        c = self.cfg
        if c.kind == "fixed":
            return c.start
        if c.kind == "multiplicative":
            return c.max  # min(max, start x factor^k) reaches its cap
        return max(c.rounds)

    def horizon(self, step: int, metrics: Mapping[str, float] | None = None, progress: float | None = None) -> int:
        """The turn budget of step `step`'s rollouts (steps count from 0); `progress`: the
        fraction of the compute budget used before the step (schedules in `every_fraction`)."""
        c = self.cfg
        if c.kind == "fixed":
            return c.start
        if c.kind in ("stepwise", "multiplicative"):
            if c.every_fraction is None:
                raises = step // c.every
            elif progress is None:
                raise ValueError("a curriculum in fractions of the compute budget needs the fraction used (progress)")
            else:
                raises = math.floor(progress / c.every_fraction + 1e-9)
            if c.kind == "stepwise":
                return c.rounds[min(raises, len(c.rounds) - 1)]
            return min(c.max, math.floor(c.start * c.factor ** min(raises, 64) + 1e-9))
        # Adaptive: the decision is made once per step, so calling twice for one step
        # (e.g. for logging) does not count a batch twice.
        if metrics is not None and step != self.last_step:
            self.last_step = step
            self.history.append(dict(metrics))
            self.since += 1
            if self._crossed() and self.level < len(c.rounds) - 1 and self.since >= c.min_steps:
                self.level += 1
                self.since = 0
                self.history.clear()  # the new horizon is judged on its own batches
        return c.rounds[self.level]

    def _crossed(self) -> bool:
        c = self.cfg
        if len(self.history) < c.window:
            return False

        def mean(key: str) -> float:
            # A rate with nothing to count (every rollout aborted) is NaN, or null once it
            # went through a checkpoint's JSON: either way no evidence, so no raise.
            values = [m.get(key, 0.0) for m in self.history]
            return sum(float("nan") if v is None else float(v) for v in values) / len(values)

        if c.success_above is not None and mean("success_rate") > c.success_above:
            return True
        return c.over_turn_above is not None and mean("over_turn_rate") > c.over_turn_above

    def state_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "since": self.since,
            "history": [dict(m) for m in self.history],
            "last_step": self.last_step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.level = int(state["level"])
        self.since = int(state["since"])
        self.history = deque(state["history"], maxlen=self.cfg.window)
        self.last_step = state["last_step"]
