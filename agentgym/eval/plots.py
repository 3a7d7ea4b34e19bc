"""Plots of success vs interaction turns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plot_curves"]


def plot_curves(results: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Success@h with 95% bands (left) and cap-hit / invalid-action rates (right), one curve
    per result; the training horizon, when known, is a dashed vertical line. A result with
    a "fit" (`agentgym.eval.fits`) also gets the fitted curve to 4x its largest horizon,
    a thin line in a lighter band, with h50 marked where success reaches 50%."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for i, res in enumerate(results):
        rows = res["horizons"]
        hs = [r["horizon"] for r in rows]
        color = f"C{i}"
        label = res.get("label") or res.get("model", f"run {i}")
        aborted = res.get("aborted", max((r.get("aborted", 0) for r in rows), default=0))
        note = f" ({aborted} aborted episodes left out)" if aborted else ""
        ax.plot(hs, [r["success"] for r in rows], "o-", color=color, label=f"{label} success@h{note}")
        ax.fill_between(
            hs, [r["success_ci_low"] for r in rows], [r["success_ci_high"] for r in rows], color=color, alpha=0.18
        )
        if aborted:
            ax.plot(
                hs,
                [r["success_aborted_as_failure"] for r in rows],
                "v:",
                color=color,
                label=f"{label} success@h, aborted = failure",
            )
        if "grid" in res.get("fit", {}):
            _plot_fit(ax, res["fit"], color, label)
        k = max((int(key.split("@")[1]) for key in rows[0] if key.startswith("pass@")), default=1)
        if k > 1:
            ax.plot(hs, [r[f"pass@{k}"] for r in rows], "--", color=color, alpha=0.8, label=f"{label} pass@{k}")
        ax2.plot(hs, [r["cap_hit_rate"] for r in rows], "s-", color=color, label=f"{label} cap hit")
        ax2.plot(hs, [r["invalid_action_rate"] for r in rows], "x:", color=color, label=f"{label} invalid actions")
        if res.get("training_horizon"):
            for a in (ax, ax2):
                a.axvline(res["training_horizon"], color=color, ls="--", lw=1, alpha=0.6)
            ax.text(res["training_horizon"], 1.02, " trained", color=color, fontsize=8, va="bottom")
    for a, ylabel in ((ax, "success rate"), (ax2, "rate")):
        a.set_xscale("log", base=2)
        a.set_xlabel("interaction turns allowed (h)")
        a.set_ylabel(ylabel)
        a.set_ylim(-0.02, 1.05)
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="best")
    hs_all = sorted({r["horizon"] for res in results for r in res["horizons"]})
    ends = [round(res["fit"]["grid"]["h"][-1]) for res in results if "grid" in res.get("fit", {})]
    for a, ticks in ((ax, sorted({*hs_all, *ends})), (ax2, hs_all)):
        a.set_xticks(ticks, [str(h) for h in ticks])
    env = results[0].get("env", "")
    fig.suptitle(title or f"Success vs interaction turns — {env}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_fit(ax: plt.Axes, fit: dict[str, Any], color: str, label: str) -> None:
    """The fitted curve (thin) in its 95% band (lighter), and h50 when it is reached."""
    grid, h50 = fit["grid"], fit["h50"]["value"]
    reached = f"h50 {h50:.1f}" if h50 is not None else "never 50%"
    note = f"asymptote {fit['asymptote']['value']:.2f}, {reached}"
    ax.plot(grid["h"], grid["success"], "-", color=color, lw=0.9, label=f"{label} fit ({note})")
    ax.fill_between(grid["h"], grid["low"], grid["high"], color=color, alpha=0.08, lw=0)
    if h50 is not None and grid["h"][0] <= h50 <= grid["h"][-1]:
        ax.plot([h50], [0.5], "D", color=color, ms=4)
        ax.annotate(f"h50={h50:.1f}", (h50, 0.5), xytext=(4, -10), textcoords="offset points", color=color, fontsize=7)
