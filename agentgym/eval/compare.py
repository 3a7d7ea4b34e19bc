"""Intervals over seeds and tasks, and comparisons of two arms, for experiments.

An arm's measurements at one point of the budget form an array ``success[seed, task, h]``:
each run's (seed's) success rate on each evaluation task at each horizon. Both seeds and
tasks are samples (of training runs, of tasks), so the bootstrap resamples both, crossed:
one draw picks seeds with replacement and tasks with replacement, and takes the mean over
the drawn grid (the two-way bootstrap; it is slightly conservative for crossed designs).

Two arms run the same seeds on the same tasks, so a comparison is paired: one draw picks
the same seeds and tasks for both arms, which removes the variation they share (the warm
start a seed gives every arm, the difficulty of a task). The detectable difference is the
one a two-sided test at 5% would find with 80% power: (z_0.975 + z_0.8) x SE of the
difference, with the SE from the same bootstrap.

How often the 95% interval of a difference covers the truth (bench/compare_coverage.py:
3 seeds x 64 tasks, 200 synthetic experiments): 0.985 without a seed effect and with a
seed-to-seed SD of 0.045 (as the quickstart's seeds vary), 0.96 at 0.08, but 0.90 at
0.15: three seeds cannot measure a large seed effect, and the interval is then too narrow.

Example:
    >>> rng = np.random.default_rng(0)
    >>> a = rng.random((3, 50, 4)) < 0.6
    >>> b = rng.random((3, 50, 4)) < 0.4
    >>> d = compare(a, b, resamples=500)
    >>> round(d.diff, 1), d.low > 0
    (0.2, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DETECTABLE_Z", "Comparison", "Estimate", "compare", "estimate"]

#: z_0.975 + z_0.80: a difference of this many standard errors is found 80% of the time at 5%.
DETECTABLE_Z = 1.959964 + 0.841621


@dataclass
class Estimate:
    """A mean with its 95% bootstrap interval."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass
class Comparison:
    """Arm A minus arm B: the difference, its 95% interval, its bootstrap SE, and the
    smallest difference this design detects (80% power, two-sided 5%)."""

    diff: float
    low: float
    high: float
    se: float
    detectable: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _draws(shape: tuple[int, int], resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed and task indices of each bootstrap draw; a single seed is not resampled (there is
    nothing to resample: the interval is then over tasks alone)."""
    rng = np.random.default_rng(seed)
    n_seeds, n_tasks = shape
    seeds = rng.integers(0, n_seeds, size=(resamples, n_seeds)) if n_seeds > 1 else np.zeros((resamples, 1), int)
    tasks = rng.integers(0, n_tasks, size=(resamples, n_tasks))
    return seeds, tasks


def _boot_means(x: np.ndarray, seeds: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """Mean of x[seed, task] over each draw's grid (x: seeds x tasks)."""
    # Mean over a crossed grid = mean over the drawn seeds of each seed's mean over the drawn tasks.
    per_seed = np.stack([x[:, t].mean(axis=1) for t in tasks])  # draws x seeds
    return np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1)


def _collapse(x: np.ndarray, horizon: int | None) -> np.ndarray:
    """seeds x tasks: at one horizon's index, or averaged over the horizons (None)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 3:
        raise ValueError(f"expected success[seed, task, horizon], got shape {x.shape}")
    return x.mean(axis=2) if horizon is None else x[:, :, horizon]


def estimate(success: np.ndarray, horizon: int | None = None, resamples: int = 2000, seed: int = 0) -> Estimate:
    """The mean success (at horizon index `horizon`, or over all horizons) with its 95%
    interval over seeds and tasks."""
    x = _collapse(success, horizon)
    seeds, tasks = _draws(x.shape, resamples, seed)
    boots = _boot_means(x, seeds, tasks)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Estimate(float(x.mean()), float(lo), float(hi))


def compare(
    a: np.ndarray, b: np.ndarray, horizon: int | None = None, resamples: int = 2000, seed: int = 0
) -> Comparison:
    """Arm a minus arm b, paired by seed and task (a[i] and b[i] ran seed i on the same tasks)."""
    xa, xb = _collapse(a, horizon), _collapse(b, horizon)
    if xa.shape != xb.shape:
        raise ValueError(f"a paired comparison needs the same seeds and tasks in both arms: {xa.shape} vs {xb.shape}")
    seeds, tasks = _draws(xa.shape, resamples, seed)
    boots = _boot_means(xa - xb, seeds, tasks)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    se = float(boots.std(ddof=1))
    return Comparison(float((xa - xb).mean()), float(lo), float(hi), se, DETECTABLE_Z * se)
