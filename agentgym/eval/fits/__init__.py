"""Curve fits of interaction scaling, with bootstrap intervals: success vs turn budget,
reward vs training compute.

- success vs turn budget h (`fit_success_curve`, success.py): a logistic in log h,
  s(h) = A / (1 + exp(-k (ln h - m))), with h50, the budget where success reaches 50%;
- reward vs training compute C (`fit_compute_curve`, compute.py): ScaleRL's sigmoid,
  R(C) = R0 + (A - R0) / (1 + (C_mid / C)^B), bounded to a reward range when given.

Both are least squares (`scipy.optimize.curve_fit`, bounded; _core.py holds the logistic,
its fit, the bootstrap and `Interval`); the 95% intervals are percentile bootstrap
intervals over refits of resampled data, whose coverage of the truth each module states
as bench/fits_coverage.py measured it.

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
