"""Curve fits of interaction scaling, with bootstrap intervals: success vs turn budget,
reward vs training compute.

Success vs turn budget h (`fit_success_curve`):

    s(h) = A / (1 + exp(-k (ln h - m)))

a logistic in log h: asymptote A in [0, 1] (the share of tasks the policy ever solves),
slope k > 0, midpoint exp(m) (the h where success is half the asymptote). Why this form:
success@h is A times the CDF of "turns an eventually-successful episode needs", a
positive, right-skewed count; the log-logistic CDF is the natural two-parameter family
for it, and it allows success@1 near 0 (tasks no policy solves in one turn), which a
saturating exponential A (1 - exp(-h / tau)) (a constant per-turn hazard) cannot. The h
where success reaches 50% is h50 = exp(m - ln(2A - 1) / k) when A > 0.5, else +inf (it
never does).

Reward vs training compute C (`fit_compute_curve`), the sigmoid of "The Art of Scaling
RL Compute" (Khatri et al., 2025, ScaleRL):

    R(C) = R0 + (A - R0) / (1 + (C_mid / C)^B)

asymptote A, scaling exponent B > 0, midpoint C_mid > 0, R0 the reward at the start. It
is the same logistic, in log C: R0 + (A - R0) / (1 + exp(-B (ln C - ln C_mid))), and is
fitted so, on rewards scaled to their range, never in C_mid itself (it spans orders of
magnitude).

Both are least squares (`scipy.optimize.curve_fit`, bounded); the 95% intervals are
percentile bootstrap intervals over refits of resampled data. Their coverage of the
truth, measured on data drawn from the models (tests/test_fits.py; bench/fits_coverage.py
with 400 datasets x 1000 resamples a line, +-0.011 at a true 95%):

- success curve, tasks resampled (200 tasks, 8 horizons from 1 to 16, the midpoint among
  them): A 0.94, k 0.95, midpoint 0.92, h50 0.93 (another 400 datasets: 0.94, 0.94,
  0.95, 0.96); BCa and basic intervals did no better.
- compute curve, points resampled (no `groups`; 3 seeds x 30 points, noise per point):
  A 0.91, B 0.95, C_mid 0.94. A is a little short (0.91-0.955 over 1,200 datasets in
  several runs, ~0.93 pooled): it rests on the few high-compute points, whose leverage a
  pairs bootstrap underrates (a wild bootstrap with leverage-scaled residuals did no
  better). When the points of a seed share their noise (a seed that runs high all
  along) it is far too narrow: A 0.56, B 0.77, C_mid 0.89. That is what `groups` is for.
- compute curve, whole groups (seeds) resampled: the bootstrap sees only G values of a
  between-seed effect, and its plain percentile interval covers 0.77, 0.77, 0.76 with 3
  seeds (~0.83 with 5). The interval is therefore widened about the estimate by
  sqrt(G / (G - 1)) t_{G-1} / z, the small-sample correction of a mean over G groups
  (the bootstrap's variance is (G - 1) / G of the unbiased one, and such a mean is
  t-distributed with G - 1 degrees of freedom): 0.95, 0.94, 0.96 with 3 seeds. The
  widening is 2.7x for 3 seeds: three seeds say little.

Example:
    >>> h = [1, 2, 4, 8, 16]
    >>> per_task = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]])
    >>> fit = fit_success_curve(h, per_task, resamples=200)
    >>> fit.asymptote.low <= fit.asymptote.value <= fit.asymptote.high
    True
    >>> fit.predict([32]).round(2)
    array([0.78])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit

__all__ = ["ComputeCurveFit", "Interval", "SuccessCurveFit", "fit_compute_curve", "fit_success_curve"]

#: The midpoint may lie up to this factor outside the observed range (ln 100).
_MIDPOINT_MARGIN = math.log(100.0)
#: Bounds of the slope k and of the exponent B (per unit of ln h, ln C).
_SLOPE_BOUNDS = (1e-2, 50.0)
#: Termination on the gradient of the squared error. The fitted values are O(1) (rates,
#: or rewards scaled to their range), so 1e-6 leaves the parameters within ~2e-5 relative
#: of a fit to 1e-12 (measured); scipy's 1e-8 makes data that jump like a step (k going
#: to its bound while the error goes to 0 and its gradient vanishes) run out of evaluations.
_GTOL = 1e-6
#: `to_dict`'s grid for plots: this many points, from the smallest x to 4x the largest.
_GRID_POINTS = 64
_EXTRAPOLATE = 4.0
#: Most steep restarts of a fit that did not converge: one per x made a refit of a
#: 75-point training curve take ~0.8 s (2000 resamples: 27 minutes).
_MAX_STEEP_STARTS = 12
#: Share of bootstrap refits that may fail to converge before the fit warns.
_FAILURE_WARN_SHARE = 0.01

ArrayLike = float | Sequence[float] | np.ndarray


@dataclass
class Interval:
    """A point estimate and its 95% bootstrap interval: the 2.5th and 97.5th percentiles of
    the bootstrap's estimates (widened for few groups in `ComputeCurveFit`)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        """JSON-safe: an infinite value or bound (an h50 never reached) is None."""
        return {k: (float(v) if math.isfinite(v) else None) for k, v in vars(self).items()}


# ---------------------------------------------------------------------- the logistic and its fit


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # 1 / (1 + exp(-z)) without overflow


def _logistic(x: np.ndarray, a: float, k: float, m: float) -> np.ndarray:
    """a / (1 + exp(-k (x - m))); broadcasts (parameters as columns, x as a row)."""
    return a * _sigmoid(k * (x - m))


def _logistic_jac(x: np.ndarray, a: float, k: float, m: float) -> np.ndarray:
    s = _sigmoid(k * (x - m))
    d = a * s * (1 - s)
    return np.stack([s, d * (x - m), -d * k], axis=1)


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, starts: Sequence[Sequence[float]], bounds: tuple[list[float], list[float]]
) -> np.ndarray:
    """(a, k, m) of least squared error among `curve_fit`s from `starts`; if none converges,
    from steep starts; RuntimeError if none of those does either, or if x has fewer than
    3 distinct values.

    Data that jump between two x (a resample of few tasks often does) are fitted best by a
    step, k at its bound; from a gentle start the optimiser may creep there through a flat
    sigmoid and run out of evaluations. The steep starts put the midpoint at each x and
    between neighbours."""
    ux = np.unique(x)
    if len(ux) < 3:  # a resample of few points can be this
        raise RuntimeError(f"3 parameters cannot be fitted to {len(ux)} distinct x")
    a0 = float(np.clip(starts[0][0], bounds[0][0], bounds[1][0]))
    mids = np.sort(np.concatenate([ux, (ux[1:] + ux[:-1]) / 2]))
    if len(mids) > _MAX_STEEP_STARTS:  # many distinct x (a training curve): evenly spread starts, not one per x
        mids = mids[np.linspace(0, len(mids) - 1, _MAX_STEEP_STARTS).round().astype(int)]
    steep = [[a0, 0.9 * _SLOPE_BOUNDS[1], float(m)] for m in mids]
    best, best_sse, error = None, math.inf, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)  # the covariance is not used
        for group in (starts, steep):
            for p0 in group:
                try:
                    p, _ = curve_fit(_logistic, x, y, p0=p0, bounds=bounds, jac=_logistic_jac, gtol=_GTOL)
                except RuntimeError as exc:  # the evaluations ran out before convergence
                    error = exc
                    continue
                sse = float(np.sum((_logistic(x, *p) - y) ** 2))
                if sse < best_sse:
                    best, best_sse = p, sse
            if best is not None:
                return best
    raise RuntimeError(f"the curve fit did not converge: {error}")


def _bootstrap(
    refit: Callable[[np.ndarray], np.ndarray], sample: Callable[[np.random.Generator], np.ndarray], n: int, seed: int
) -> tuple[np.ndarray, int]:
    """Parameters of `n` refits, each on the rows `sample` draws, and how many refits
    failed to converge (skipped; more than 1% is warned about)."""
    rng = np.random.default_rng(seed)
    draws, failed = [], 0
    for _ in range(n):
        try:
            draws.append(refit(sample(rng)))
        except RuntimeError:
            failed += 1
    if not draws:
        raise RuntimeError(f"all {n} bootstrap refits failed to converge")
    if failed > _FAILURE_WARN_SHARE * n:
        warnings.warn(
            f"{failed} of {n} bootstrap refits did not converge and were skipped: the intervals leave out "
            "the resamples the model fits worst",
            RuntimeWarning,
            stacklevel=3,
        )
    return np.array(draws), failed


def _percentiles(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles along axis 0, as order statistics (exact with inf values)."""
    low, high = np.quantile(draws, [0.025, 0.975], axis=0, method="inverted_cdf")
    return low, high


def _interval(value: float, draws: np.ndarray) -> Interval:
    low, high = _percentiles(draws)
    return Interval(float(value), float(low), float(high))


def _grid(low: float, high: float) -> np.ndarray:
    return np.geomspace(low, _EXTRAPOLATE * high, _GRID_POINTS)


# ---------------------------------------------------------------------- success vs turn budget


def _h50(a: np.ndarray, k: np.ndarray, m: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(a > 0.5, np.exp(m - np.log(np.maximum(2 * a - 1, 0.0)) / k), np.inf)


@dataclass
class SuccessCurveFit:
    """Success vs turn budget, s(h) = A / (1 + exp(-k (ln h - m))), with 95% intervals.

    `midpoint` is exp(m), the h at half the asymptote; `h50` the h at 50% success (inf
    when A <= 0.5). `params` is the point fit (A, k, m), `draws` the bootstrap's."""

    asymptote: Interval
    slope: Interval
    midpoint: Interval
    h50: Interval
    horizons: list[int]
    tasks: int = 0
    resamples: int = 0
    failed: int = 0
    params: np.ndarray = field(default_factory=lambda: np.zeros(3), repr=False)
    draws: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)), repr=False)

    def predict(self, h: ArrayLike) -> np.ndarray:
        """The fitted success rate at each turn budget in `h`."""
        return _logistic(np.log(np.atleast_1d(np.asarray(h, dtype=float))), *self.params)

    def band(self, h: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise 2.5th and 97.5th percentiles of the bootstrap curves at each h."""
        x = np.log(np.atleast_1d(np.asarray(h, dtype=float)))
        return _percentiles(_logistic(x[None, :], *(self.draws[:, i : i + 1] for i in range(3))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe. An infinite h50 (value or bound) is None: success never reaches 50%.

        `grid` holds the curve and its band at 64 turn budgets from 1 to 4x the largest
        horizon fitted: what a plot of the extrapolated fit needs."""
        h = _grid(1.0, max(self.horizons))
        low, high = self.band(h)
        return {
            "model": "A / (1 + exp(-k (ln h - m)))",
            "asymptote": self.asymptote.to_dict(),
            "slope": self.slope.to_dict(),
            "midpoint": self.midpoint.to_dict(),
            "h50": self.h50.to_dict(),
            "horizons": list(self.horizons),
            "tasks": self.tasks,
            "resamples": self.resamples,
            "failed_resamples": self.failed,
            "grid": {"h": h.tolist(), "success": self.predict(h).tolist(), "low": low.tolist(), "high": high.tolist()},
        }


def fit_success_curve(
    horizons: Sequence[int], per_task: np.ndarray, resamples: int = 1000, seed: int = 0
) -> SuccessCurveFit:
    """Fit s(h) = A / (1 + exp(-k (ln h - m))) to the mean success curve over tasks.

    Args:
        horizons: the turn budgets, at least 3 distinct ones.
        per_task: shape (tasks, len(horizons)): each task's success rate at each horizon.
        resamples: bootstrap resamples of the tasks (rows, with replacement), each refitted.
        seed: of the bootstrap.

    The intervals cover the truth ~95% of the time when the midpoint lies among the
    horizons (see the module docstring). Success that does not change with h says
    nothing of k or the midpoint: their intervals then span much of their bounds.

    Example:
        >>> fit = fit_success_curve([1, 2, 4, 8], np.array([[0, 0, 1, 1], [0, 1, 1, 1]]), resamples=100)
        >>> round(fit.asymptote.value, 2)
        1.0
    """
    hs = np.asarray(horizons, dtype=float)
    data = np.asarray(per_task, dtype=float)
    if len(set(hs.tolist())) < 3:
        raise ValueError(f"a curve needs at least 3 horizons (it has 3 parameters), got {list(horizons)}")
    if np.any(hs < 1):
        raise ValueError(f"horizons must be positive turn budgets, got {list(horizons)}")
    if data.ndim != 2 or data.shape[1] != len(hs) or len(data) == 0:
        raise ValueError(f"per_task must have shape (tasks, {len(hs)}) with at least one task, got {data.shape}")
    if not np.all(np.isfinite(data)) or np.any((data < 0) | (data > 1)):
        raise ValueError("per_task must hold success rates in [0, 1], no NaN (leave out tasks without episodes)")
    order = np.argsort(hs, kind="stable")
    hs, data = hs[order], data[:, order]
    x = np.log(hs)
    bounds = ([0.0, _SLOPE_BOUNDS[0], x[0] - _MIDPOINT_MARGIN], [1.0, _SLOPE_BOUNDS[1], x[-1] + _MIDPOINT_MARGIN])
    y = data.mean(axis=0)
    a0 = float(np.clip(y.max(), 0.01, 1.0))
    m0 = float(x[np.argmax(y >= a0 / 2)])  # the first horizon at half the highest success
    params = _fit_logistic(x, y, [[a0, 2.0, m0], [a0, 2.0, float(np.median(x))], [1.0, 1.0, x[-1]]], bounds)
    draws, failed = _bootstrap(
        lambda rows: _fit_logistic(x, data[rows].mean(axis=0), [params], bounds),
        lambda rng: rng.integers(0, len(data), len(data)),
        resamples,
        seed,
    )
    a, k, m = draws.T
    return SuccessCurveFit(
        asymptote=_interval(params[0], a),
        slope=_interval(params[1], k),
        midpoint=_interval(math.exp(params[2]), np.exp(m)),
        h50=_interval(float(_h50(*params)), _h50(a, k, m)),
        horizons=[int(h) for h in hs],
        tasks=len(data),
        resamples=resamples,
        failed=failed,
        params=params,
        draws=draws,
    )


# ---------------------------------------------------------------------- reward vs training compute


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
        c = _grid(*self.compute_range)
        low, high = self.band(c)
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
            "grid": {
                "compute": c.tolist(),
                "reward": self.predict(c).tolist(),
                "low": low.tolist(),
                "high": high.tolist(),
            },
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
