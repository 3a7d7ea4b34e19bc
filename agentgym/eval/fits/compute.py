"""Reward vs training compute C (`fit_compute_curve`), the sigmoid of "The Art of Scaling
RL Compute" (Khatri et al., 2025, ScaleRL):

    R(C) = R0 + (A - R0) / (1 + (C_mid / C)^B)

asymptote A, scaling exponent B > 0, midpoint C_mid > 0, R0 the reward at the start. It
is the same logistic, in log C: R0 + (A - R0) / (1 + exp(-B (ln C - ln C_mid))), and is
fitted so, on rewards scaled to their range, never in C_mid itself (it spans orders of
magnitude).

The 95% intervals are percentile bootstrap intervals over refits of resampled data.
Their coverage of the truth, measured on data drawn from the model (tests/test_fits.py;
bench/fits_coverage.py with 400 datasets x 1000 resamples a line, +-0.011 at a true 95%):

- points resampled (no `groups`; 3 seeds x 30 points, noise per point): A 0.91, B 0.95,
  C_mid 0.94. A is a little short (0.91-0.955 over 1,200 datasets in several runs, ~0.93
  pooled): it rests on the few high-compute points, whose leverage a pairs bootstrap
  underrates (a wild bootstrap with leverage-scaled residuals did no better). When the
  points of a seed share their noise (a seed that runs high all along) it is far too
  narrow: A 0.56, B 0.77, C_mid 0.89. That is what `groups` is for.
- whole groups (seeds) resampled: the bootstrap sees only G values of a between-seed
  effect, and its plain percentile interval covers 0.77, 0.77, 0.76 with 3 seeds (~0.83
  with 5). The interval is therefore widened about the estimate by
  sqrt(G / (G - 1)) t_{G-1} / z, the small-sample correction of a mean over G groups
  (the bootstrap's variance is (G - 1) / G of the unbiased one, and such a mean is
  t-distributed with G - 1 degrees of freedom): 0.95, 0.94, 0.96 with 3 seeds. The
  widening is 2.7x for 3 seeds: three seeds say little.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from agentgym.eval.fits._core import (
    _MIDPOINT_MARGIN,
    _SLOPE_BOUNDS,
    ArrayLike,
    Interval,
    _bootstrap,
    _fit_logistic,
    _logistic,
    _percentiles,
    _plot_grid,
)


def _small_sample_widening(groups: int) -> float:
    """How much wider than the bootstrap's a 95% interval over `groups` groups must be:
    sqrt(G / (G - 1)) t_{G-1} / z (see the module docstring); 2.7 for 3 groups."""
    return math.sqrt(groups / (groups - 1)) * float(stats.t.ppf(0.975, groups - 1) / stats.norm.ppf(0.975))


def _widen(value: Any, low: Any, high: Any, factor: float) -> tuple[Any, Any]:
    return value - factor * (value - low), value + factor * (high - value)


@dataclass
class ComputeCurveFit:
    """Reward vs training compute, R(C) = R0 + (A - R0) / (1 + (C_mid / C)^B), with 95% intervals.

    `bootstrap` is "groups" (whole groups resampled, the intervals widened by `widening`
    for their small number) or "pairs" (points resampled). `params` is the point fit
    (A, B, ln C_mid), `draws` the bootstrap's."""

    asymptote: Interval
    exponent: Interval
    midpoint: Interval
    r0: float
    compute_range: tuple[float, float] = (1.0, 1.0)
    points: int = 0
    bootstrap: str = "pairs"
    groups: int = 0
    widening: float = 1.0
    resamples: int = 0
    failed: int = 0
    params: np.ndarray = field(default_factory=lambda: np.zeros(3), repr=False)
    draws: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)), repr=False)

    def _curves(self, c: ArrayLike, params: np.ndarray) -> np.ndarray:
        x = np.log(np.atleast_1d(np.asarray(c, dtype=float)))
        a, b, mu = (params[..., i : i + 1] for i in range(3))
        return self.r0 + _logistic(x, a - self.r0, b, mu)

    def predict(self, c: ArrayLike) -> np.ndarray:
        """The fitted reward at each compute in `c`."""
        return self._curves(c, self.params)

    def band(self, c: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise 95% band at each compute in `c`: the bootstrap curves' 2.5th and
        97.5th percentiles, widened about the fit by `widening`."""
        return _widen(self.predict(c), *_percentiles(self._curves(c, self.draws)), self.widening)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; `grid` holds the curve and its band at 64 computes from the smallest
        fitted to 4x the largest."""
        return {
            "model": "R0 + (A - R0) / (1 + (C_mid / C)^B)",
            "asymptote": self.asymptote.to_dict(),
            "exponent": self.exponent.to_dict(),
            "midpoint": self.midpoint.to_dict(),
            "r0": self.r0,
            "compute_range": list(self.compute_range),
            "points": self.points,
            "bootstrap": self.bootstrap,
            "groups": self.groups,
            "widening": self.widening,
            "resamples": self.resamples,
            "failed_resamples": self.failed,
            "grid": _plot_grid(self.predict, self.band, *self.compute_range, "compute", "reward"),
        }


def fit_compute_curve(
    compute: Sequence[float],
    reward: Sequence[float],
    r0: float | None = None,
    groups: Sequence[Any] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    reward_range: tuple[float, float] | None = None,
) -> ComputeCurveFit:
    """Fit ScaleRL's R(C) = R0 + (A - R0) / (1 + (C_mid / C)^B) to (compute, reward) points.

    Args:
        compute: the training compute of each point (any positive unit: tokens, GPU hours).
        reward: the reward (or success rate) measured there.
        r0: the reward at the start; default: the mean over groups of the reward at each
            group's lowest compute. It is held fixed in the bootstrap.
        groups: what each point belongs to (its seed). With 2 or more distinct groups the
            bootstrap resamples whole groups and widens the intervals for their small
            number; otherwise it resamples points, which is right only when each point's
            noise is its own (see the module docstring for the coverage of each).
        resamples: bootstrap resamples, each refitted.
        seed: of the bootstrap.
        reward_range: the rewards the environment can give, (low, high): the asymptote A
            and its interval stay inside it (a curve still rising at the last point
            otherwise extrapolates to an A no policy can reach). None: unbounded.

    Example:
        >>> c = np.geomspace(1e9, 1e12, 20)
        >>> fit = fit_compute_curve(c, 0.1 + 0.5 / (1 + (3e10 / c) ** 1.5), r0=0.1, resamples=50)
        >>> round(fit.asymptote.value, 3), round(fit.exponent.value, 3), f"{fit.midpoint.value:.2g}"
        (0.6, 1.5, '3e+10')
    """
    cs, rs = np.asarray(compute, dtype=float), np.asarray(reward, dtype=float)
    if cs.ndim != 1 or cs.shape != rs.shape:
        raise ValueError(f"compute and reward must be 1-d and of one length, got shapes {cs.shape} and {rs.shape}")
    if len(np.unique(cs)) < 3:
        raise ValueError(f"a curve needs at least 3 distinct compute values (it has 3 parameters), got {np.unique(cs)}")
    if not (np.all(np.isfinite(cs)) and np.all(cs > 0) and np.all(np.isfinite(rs))):
        raise ValueError("compute must be positive and finite, reward finite")
    if groups is not None and len(groups) != len(cs):
        raise ValueError(f"groups must name the group of each of the {len(cs)} points, got {len(groups)}")
    labels = (
        np.zeros(len(cs), dtype=int) if groups is None else np.unique([str(g) for g in groups], return_inverse=True)[1]
    )
    members = [np.flatnonzero(labels == g) for g in range(labels.max() + 1)]
    if r0 is None:
        r0 = float(np.mean([rs[idx][cs[idx] == cs[idx].min()].mean() for idx in members]))
    # Fitted as z = (R - R0) / scale = a / (1 + exp(-B (ln C - mu))), a = (A - R0) / scale.
    scale = float(np.max(np.abs(rs - r0))) or 1.0
    x, z = np.log(cs), (rs - r0) / scale
    a_low, a_high = -np.inf, np.inf
    if reward_range is not None:
        low, high = map(float, reward_range)
        if not low < high or not low <= r0 <= high:
            raise ValueError(f"reward_range must be (low, high) with low < high around R0 = {r0:g}, got {reward_range}")
        a_low, a_high = (low - r0) / scale, (high - r0) / scale
    bounds = (
        [a_low, _SLOPE_BOUNDS[0], x.min() - _MIDPOINT_MARGIN],
        [a_high, _SLOPE_BOUNDS[1], x.max() + _MIDPOINT_MARGIN],
    )
    top = float(z[x >= np.quantile(x, 0.9)].mean())  # the scaled reward at the most compute
    fitted = _fit_logistic(x, z, [[top, 1.0, float(q)] for q in np.quantile(x, [0.5, 0.25, 0.75])], bounds)
    if len(members) >= 2:
        sample = lambda rng: np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])  # noqa: E731
        method, widening = "groups", _small_sample_widening(len(members))
    else:
        sample = lambda rng: rng.integers(0, len(cs), len(cs))  # noqa: E731
        method, widening = "pairs", 1.0
    scaled, failed = _bootstrap(lambda rows: _fit_logistic(x[rows], z[rows], [fitted], bounds), sample, resamples, seed)

    def to_reward_units(p: np.ndarray) -> np.ndarray:
        return np.stack([r0 + scale * p[..., 0], p[..., 1], p[..., 2]], axis=-1)

    params, draws = to_reward_units(fitted), to_reward_units(scaled)

    def interval(
        value: float, column: np.ndarray, to: Callable[[Any], Any] = float, clip: tuple[float, float] | None = None
    ) -> Interval:
        """Widened in the fitted scale (A, ln B, ln C_mid: B and C_mid are positive and skewed)."""
        low, high = _widen(value, *_percentiles(column), widening)
        if clip is not None:
            low, high = max(low, clip[0]), min(high, clip[1])
        return Interval(float(to(value)), float(to(low)), float(to(high)))

    return ComputeCurveFit(
        asymptote=interval(params[0], draws[:, 0], clip=reward_range and tuple(map(float, reward_range))),
        exponent=interval(math.log(params[1]), np.log(draws[:, 1]), np.exp),
        midpoint=interval(params[2], draws[:, 2], np.exp),
        r0=float(r0),
        compute_range=(float(cs.min()), float(cs.max())),
        points=len(cs),
        bootstrap=method,
        groups=len(members) if method == "groups" else 0,
        widening=widening,
        resamples=resamples,
        failed=failed,
        params=params,
        draws=draws,
    )
