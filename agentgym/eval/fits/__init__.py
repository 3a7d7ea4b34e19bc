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

See _core.py (the logistic, its fit, the bootstrap, `Interval`), success.py (the success
curve) and compute.py (the compute curve).

Example:
    >>> import numpy as np
    >>> h = [1, 2, 4, 8, 16]
    >>> per_task = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]])
    >>> fit = fit_success_curve(h, per_task, resamples=200)
    >>> fit.asymptote.low <= fit.asymptote.value <= fit.asymptote.high
    True
    >>> fit.predict([32]).round(2)
    array([0.78])
"""

from agentgym.eval.fits._core import Interval
from agentgym.eval.fits.compute import ComputeCurveFit, fit_compute_curve
from agentgym.eval.fits.success import SuccessCurveFit, fit_success_curve

__all__ = ["ComputeCurveFit", "Interval", "SuccessCurveFit", "fit_compute_curve", "fit_success_curve"]
