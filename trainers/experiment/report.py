"""An experiment's results: results.csv (one row per arm, seed, budget point and horizon),
tasks.csv (the same per evaluation task), training.csv, report.md and the plots.

Intervals are over seeds and tasks (agentgym/eval/compare.py); differences between arms
are paired by seed and task, each with the smallest difference the design detects.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from agentgym.trainers.experiment.config import Experiment
from agentgym.trainers.experiment.runner import CellResult

from agentgym.eval.compare import Estimate, compare, estimate

__all__ = ["result_rows", "write_report"]

#: Bootstrap refits of each curve fit (each a least-squares fit, ~0.1 s for a training curve).
FIT_RESAMPLES = 1000

ROW_KEYS = (
    "arm",
    "seed",
    "point",
    "steps",
    "compute_used",
    "horizon",
    "success",
    "success_ci_low",
    "success_ci_high",
    "episodes",
)


def result_rows(cells: list[CellResult]) -> list[dict[str, Any]]:
    """One row per arm, seed, budget point and horizon (the run's own interval, over tasks)."""
    rows = []
    for c in cells:
        for p in c.points:
            for h in p["horizons"]:
                rows.append(
                    {"arm": c.arm, "seed": c.seed, "point": p["point"], "steps": p["steps"],
                     "compute_used": p["compute_used"], **h}
                )  # fmt: skip
    return [{k: r[k] for k in ROW_KEYS} for r in rows]


def _write_csv(path: Path, rows: list[dict[str, Any]], keys: list[str] | tuple[str, ...]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(keys))
        writer.writeheader()
        writer.writerows(rows)


class Results:
    """The cells of an experiment as arrays: success[seed, task, horizon] per arm and point."""

    def __init__(self, experiment: Experiment, cells: list[CellResult]):
        self.cfg = experiment.cfg
        self.cells = cells
        self.arms = list(self.cfg.arms)
        self.seeds = list(self.cfg.seeds)
        self.points = list(self.cfg.eval.at)
        self.horizons = sorted(self.cfg.eval.horizons)
        by = {(c.arm, c.seed): c for c in cells}
        self.by = by
        tasks = None
        for c in cells:
            for p in c.points:
                ids = set(p["per_task"])
                tasks = ids if tasks is None else tasks & ids
        self.tasks = sorted(tasks or [])

    def point(self, cell: CellResult, f: float) -> dict[str, Any] | None:
        return next((p for p in cell.points if math.isclose(p["point"], f)), None)

    def array(self, arm: str, f: float) -> np.ndarray:
        """success[seed, task, horizon] of `arm` at budget point `f`."""
        out = np.empty((len(self.seeds), len(self.tasks), len(self.horizons)))
        for i, s in enumerate(self.seeds):
            p = self.point(self.by[(arm, s)], f)
            for j, t in enumerate(self.tasks):
                out[i, j] = p["per_task"][t]
        return out


def _fmt(e: Estimate) -> str:
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


def write_report(experiment: Experiment, cells: list[CellResult], command: str, wall_s: float) -> Path:
    """Write results.csv, tasks.csv, training.csv, report.md and the plots into the
    experiment's results folder; returns report.md's path."""
    cfg = experiment.cfg
    out = experiment.results
    out.mkdir(parents=True, exist_ok=True)
    res = Results(experiment, cells)
    _write_csv(out / "results.csv", result_rows(cells), ROW_KEYS)
    task_rows = [
        {"arm": c.arm, "seed": c.seed, "point": p["point"], "horizon": h, "task": t, "success": v[k]}
        for c in cells
        for p in c.points
        for t, v in sorted(p["per_task"].items())
        for k, h in enumerate(res.horizons)
    ]
    _write_csv(out / "tasks.csv", task_rows, ["arm", "seed", "point", "horizon", "task", "success"])
    train_rows = [{"arm": c.arm, "seed": c.seed, **r} for c in cells for r in c.training]
    train_keys = [
        "arm",
        "seed",
        "step",
        "horizon",
        "compute_used",
        "reward_mean",
        "success_rate",
        "invalid_action_rate",
    ]
    _write_csv(out / "training.csv", train_rows, train_keys)

    B = cfg.bootstrap
    end = 1.0
    lines = [f"# Experiment: {cfg.name}", ""]
    runs_s = sum(c.wall_s for c in cells)
    lines += [f"Command: `{command}`  ", f"Wall time: the runs took {runs_s / 60:.1f} min one after another "
              f"({cfg.parallel} at a time here); this invocation {wall_s / 60:.1f} min; "
              f"per run: {', '.join(f'{c.arm}/{c.seed} {c.wall_s / 60:.1f}' for c in cells)} min  ",
              f"Load average when written: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", ""]  # fmt: skip
    lines += ["## Design", ""]
    lines += [
        f"- Base config: `{cfg.base}`; every arm: `{cfg.overrides or {}}`",
        f"- Compute budget per run: {cfg.budget.total:g} {cfg.budget.unit.replace('_', ' ')} (the run ends at the "
        "first step boundary past it; the LR schedule and curriculum follow the fraction used)",
        f"- Seeds: {cfg.seeds}; evaluation: {len(res.tasks)} tasks of split `{cfg.eval.split}` x "
        f"{cfg.eval.samples_per_task} sample(s), horizons {res.horizons}, at budget fractions {res.points}",
        "- Intervals: 95% bootstrap over seeds and tasks (crossed); differences paired by seed and task; "
        "'detectable' = the smallest difference found with 80% power at 5% (2.80 x its SE)",
        "",
        "| arm | overrides | steps (per seed) | compute used (overshoot) |",
        "|---|---|---|---|",
    ]
    for arm in res.arms:
        runs = [res.by[(arm, s)] for s in res.seeds]
        steps = ", ".join(str(c.compute.get("steps")) for c in runs)
        used = ", ".join(f"{c.compute.get('used', 0):.0f} (+{c.compute.get('overshoot', 0):.0f})" for c in runs)
        lines.append(f"| {arm} | `{cfg.arms[arm]}` | {steps} | {used} |")

    lines += ["", "## Success at the end of the budget", ""]
    lines += ["| arm | " + " | ".join(f"success@{h}" for h in res.horizons) + " | mean over h |"]
    lines += ["|---" * (len(res.horizons) + 2) + "|"]
    finals = {arm: res.array(arm, end) for arm in res.arms}
    for arm in res.arms:
        cells_ = [_fmt(estimate(finals[arm], k, B)) for k in range(len(res.horizons))]
        lines.append(f"| {arm} | " + " | ".join(cells_) + f" | {_fmt(estimate(finals[arm], None, B))} |")

    lines += ["", "## Differences between arms (end of the budget)", ""]
    top = len(res.horizons) - 1
    lines += [f"| A - B | mean over h: diff [95% CI] | detectable | success@{res.horizons[top]}: diff [95% CI] | "
              "detectable |", "|---|---|---|---|---|"]  # fmt: skip
    for a, b in itertools.combinations(res.arms, 2):
        m, t = compare(finals[a], finals[b], None, B), compare(finals[a], finals[b], top, B)
        lines.append(
            f"| {a} - {b} | {m.diff:+.3f} [{m.low:+.3f}, {m.high:+.3f}]{' *' if m.excludes_zero else ''} | "
            f"{m.detectable:.3f} | {t.diff:+.3f} [{t.low:+.3f}, {t.high:+.3f}]{' *' if t.excludes_zero else ''} | "
            f"{t.detectable:.3f} |"
        )
    lines += ["", "\\* the interval excludes 0.", ""]

    lines += ["## Success vs compute (mean success@h over the horizons)", ""]
    lines += ["| arm | " + " | ".join(f"{f:g} of the budget" for f in res.points) + " |"]
    lines += ["|---" * (len(res.points) + 1) + "|"]
    for arm in res.arms:
        lines.append(f"| {arm} | " + " | ".join(_fmt(estimate(res.array(arm, f), None, B)) for f in res.points) + " |")

    fits: dict[str, tuple[Any, Any]] = {}
    if cfg.fit:
        fit_lines, fits = _fits(res, finals, B)
        lines += ["", *fit_lines]
    lines += ["", "## Figures", "", "![success vs turns](success_vs_turns.png)", "",
              "![success vs compute](success_vs_compute.png)", "", "![reward vs compute](reward_vs_compute.png)", ""]  # fmt: skip
    _plot(res, finals, out, B, fits)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _fits(res: Results, finals: dict[str, np.ndarray], B: int) -> tuple[list[str], dict[str, tuple[Any, Any]]]:
    """Curve fits per arm: success@h at the end (tasks averaged over seeds), and the
    training reward vs compute (points of every seed, resampled by seed); the report's
    lines, and each arm's two fits (None where one could not be made)."""
    from agentgym.eval.fits import fit_compute_curve, fit_success_curve

    lines = ["## Fits", "", "success@h = A / (1 + exp(-k (ln h - m))) at the end of the budget (intervals resample tasks, "
             "each averaged over the seeds); reward(C) = R0 + (A - R0) / (1 + (C_mid / C)^B) over training "
             "(\"The Art of Scaling RL Compute\"; intervals resample seeds, or steps with one seed).", "",
             "| arm | success asymptote A | h at 50% success | slope k | reward asymptote | reward midpoint C_mid |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    if res.cfg.reward_range:
        lines[2] += (
            " The reward asymptote is bounded to the reward range "
            f"[{', '.join(f'{x:g}' for x in res.cfg.reward_range)}]."
        )
    trained = {
        arm: frozenset(r.get("horizon") for c in res.cells if c.arm == arm for r in c.training) for arm in res.arms
    }
    if len(set(trained.values())) > 1:
        lines[2] += (" The arms trained at different horizons, so their training rewards measure different tasks "
                     "(success within a different number of turns): compare arms by the evaluation above, not by the "
                     "reward fits.")  # fmt: skip
    fits: dict[str, tuple[Any, Any]] = {}
    for arm in res.arms:
        row, f, g = [arm], None, None
        try:
            f = fit_success_curve(res.horizons, finals[arm].mean(axis=0), resamples=min(B, FIT_RESAMPLES))
            row += [_interval(f.asymptote), _interval(f.h50), _interval(f.slope)]
        except (ValueError, RuntimeError) as exc:
            row += [f"no fit ({exc})", "", ""]
        train = [(c.seed, r) for c in res.cells if c.arm == arm for r in c.training if r.get("reward_mean") is not None]
        try:
            g = fit_compute_curve(
                [r["compute_used"] for _, r in train],
                [r["reward_mean"] for _, r in train],
                groups=[s for s, _ in train],
                resamples=min(B, FIT_RESAMPLES),
                reward_range=res.cfg.reward_range and tuple(res.cfg.reward_range),
            )
            row += [_interval(g.asymptote), _interval(g.midpoint, "{:.3g}")]
        except (ValueError, RuntimeError) as exc:
            row += [f"no fit ({exc})", ""]
        lines.append("| " + " | ".join(row) + " |")
        fits[arm] = (f, g)
    return lines, fits


def _interval(iv: Any, fmt: str = "{:.3f}") -> str:
    def one(x: float) -> str:
        return "inf" if x is None or not math.isfinite(x) else fmt.format(x)

    return f"{one(iv.value)} [{one(iv.low)}, {one(iv.high)}]"


def _plot(res: Results, finals: dict[str, np.ndarray], out: Path, B: int, fits: dict[str, tuple[Any, Any]]) -> None:
    """success_vs_turns.png (with each arm's fit extrapolated to 4x the largest horizon),
    success_vs_compute.png, reward_vs_compute.png (with each arm's fitted sigmoid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, arm in enumerate(res.arms):
        _with_band(ax, res.horizons, [estimate(finals[arm], k, B) for k in range(len(res.horizons))], i, arm)
        f = fits.get(arm, (None, None))[0]
        if f is not None:
            grid = f.to_dict()["grid"]
            ax.plot(grid["h"], grid["success"], "--", color=f"C{i}", lw=0.9, label=f"{arm} fit")
            ax.fill_between(grid["h"], grid["low"], grid["high"], color=f"C{i}", alpha=0.07)
    ax.set_xscale("log", base=2)
    ticks = sorted({*res.horizons, 4 * max(res.horizons)}) if fits else res.horizons
    ax.set_xticks(ticks, [str(h) for h in ticks])
    ax.set(xlabel="interaction turns allowed (h)", ylabel="success rate", ylim=(-0.02, 1.02))
    ax.set_title(f"{res.cfg.name}: success@h at the end of the budget (95% over seeds and tasks)", fontsize=9)
    _save(fig, ax, out / "success_vs_turns.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, arm in enumerate(res.arms):
        _with_band(ax, res.points, [estimate(res.array(arm, f), None, B) for f in res.points], i, arm)
    unit = res.cfg.budget.unit.replace("_", " ")
    ax.set(xlabel=f"fraction of the budget ({res.cfg.budget.total:g} {unit})", ylabel="mean success@h over h")
    ax.set_ylim(-0.02, 1.02)
    _save(fig, ax, out / "success_vs_compute.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, arm in enumerate(res.arms):
        for j, c in enumerate(c for c in res.cells if c.arm == arm):
            pts = [(r["compute_used"], r["reward_mean"]) for r in c.training if r.get("reward_mean") is not None]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, ".-", color=f"C{i}", alpha=0.5, lw=0.8, label=arm if j == 0 else None)
        g = fits.get(arm, (None, None))[1]
        if g is not None:
            c = np.linspace(
                max(1.0, min(r["compute_used"] for cc in res.cells for r in cc.training)),
                res.cfg.budget.total * 1.1,
                200,
            )
            ax.plot(c, g.predict(c), "-", color=f"C{i}", lw=2, label=f"{arm} fit (asymptote {g.asymptote.value:.2f})")
    ax.set(xlabel=f"training compute ({unit})", ylabel="mean training reward")
    _save(fig, ax, out / "reward_vs_compute.png")


def _with_band(ax: Any, x: list[float], ests: list[Estimate], i: int, label: str) -> None:
    """Means as a line with their 95% intervals as a band, in the arm's colour."""
    ax.plot(x, [e.mean for e in ests], "o-", color=f"C{i}", label=label)
    ax.fill_between(x, [e.low for e in ests], [e.high for e in ests], color=f"C{i}", alpha=0.18)


def _save(fig: Any, ax: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
