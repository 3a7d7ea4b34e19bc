"""Evaluation: success vs interaction turns."""

from agentgym.eval.evaluate import EvalResult, evaluate
from agentgym.eval.fits import fit_compute_curve, fit_success_curve
from agentgym.eval.metrics import bootstrap_ci, horizon_metrics, outcome_at, pass_at_k, pass_hat_k, per_task_success
from agentgym.eval.plots import plot_curves

__all__ = [
    "EvalResult",
    "bootstrap_ci",
    "evaluate",
    "fit_compute_curve",
    "fit_success_curve",
    "horizon_metrics",
    "outcome_at",
    "pass_at_k",
    "pass_hat_k",
    "per_task_success",
    "plot_curves",
]
