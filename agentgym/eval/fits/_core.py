"""What both curve fits share: the logistic a / (1 + exp(-k (x - m))) in x = ln h or
ln C and its bounded least-squares fit, the percentile bootstrap over refits, the
`Interval` they report, and the grid `to_dict` writes for plots."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

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
    lower, upper = np.asarray(bounds[0], dtype=float), np.asarray(bounds[1], dtype=float)
    # A start outside the bounds (data above a reward range's top, say) is moved inside them.
    starts = [np.clip(np.asarray(p0, dtype=float), lower, upper) for p0 in starts]
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


# ---------------------------------------------------------------------- the bootstrap


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


def _plot_grid(
    predict: Callable[[np.ndarray], np.ndarray],
    band: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    start: float,
    stop: float,
    x_key: str,
    y_key: str,
) -> dict[str, list[float]]:
    """`to_dict`'s "grid": the fitted curve (`predict`) and its band at 64 x spaced
    geometrically from `start` to 4x `stop`, as {x_key, y_key, "low", "high"}."""
    x = np.geomspace(start, _EXTRAPOLATE * stop, _GRID_POINTS)
    low, high = band(x)
    return {x_key: x.tolist(), y_key: predict(x).tolist(), "low": low.tolist(), "high": high.tolist()}
