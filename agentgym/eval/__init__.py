"""Evaluation: success vs interaction turns."""

from agentgym.eval.evaluate import EvalResult, evaluate
from agentgym.eval.metrics import bootstrap_ci, horizon_metrics, outcome_at, pass_at_k, pass_hat_k
from agentgym.eval.plots import plot_curves

__all__ = [
    "EvalResult",
    "bootstrap_ci",
    "evaluate",
    "horizon_metrics",
    "outcome_at",
    "pass_at_k",
    "pass_hat_k",
    "plot_curves",
]
