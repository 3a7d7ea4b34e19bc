"""`evaluate`: a policy on an env's test split at several turn budgets."""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentgym import jsonio
from agentgym.checks import check_env, check_output_dir
from agentgym.config import EvalConfig, to_dict
from agentgym.eval.fits import fit_success_curve
from agentgym.eval.metrics import horizon_metrics, per_task_success, task_accuracy_by_step
from agentgym.eval.plots import plot_curves
from agentgym.policy.base import Policy
from agentgym.registration import env_tasks
from agentgym.rollout import (
    EpisodeSpec,
    RolloutPool,
    RolloutStats,
    env_maker,
    episode_rates,
    episode_seed,
    rollout_metrics,
    rollout_settings,
    warn_aborted,
)
from agentgym.trajectory import Trajectory, save_trajectories

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """What `evaluate` measured; also written to `output_dir`."""

    summary: dict[str, Any]
    trajectories: list[Trajectory]
    output_dir: Path

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.summary["horizons"]

    def success_at(self, h: int) -> float:
        return next(r["success"] for r in self.rows if r["horizon"] == h)


def evaluate(cfg: EvalConfig, policy: Policy | None = None, pool: RolloutPool | None = None) -> EvalResult:
    """Run the sweep the config describes and write results.json, results.csv,
    success_vs_turns.png (and trajectories.jsonl) into `cfg.output_dir`.

    `pool`: an open rollout pool of this env to run on (a trainer's); default: one for
    this call, from `cfg.rollout`."""
    # What the run needs is checked before the policy loads: results must not be lost at the end.
    env_id = check_env(cfg.env)
    out = check_output_dir(cfg.output_dir)
    if (out / "results.json").exists():
        print(f"agentgym: replacing the earlier evaluation results in {out}", file=sys.stderr)
    if policy is None:
        from agentgym.policy.factory import build_policy

        policy = build_policy(cfg.policy)
    torch.manual_seed(cfg.seed)
    tasks = env_tasks(cfg.env)
    horizons = sorted(set(cfg.horizons))
    sampling, options = rollout_settings(cfg)
    mode = cfg.sweep if cfg.sweep != "auto" else ("rerun" if options.budget_visible else "prefix")
    run_horizons = [max(horizons)] if mode == "prefix" else horizons
    specs = [
        EpisodeSpec(t.id, h, sample=s, seed=episode_seed(cfg.seed, i, s))
        for h in run_horizons
        for i, t in enumerate(tasks)
        for s in range(cfg.samples_per_task)
    ]
    stats = RolloutStats()
    own = pool is None
    if own:
        pool = RolloutPool.from_config(cfg.rollout, env_maker(env_id, **cfg.env.kwargs), env_id)
    elif pool.env_id != env_id:
        raise ValueError(f"evaluate: the pool runs {pool.env_id!r}, the config evaluates {env_id!r}")
    try:
        trajectories = pool.run(
            policy,
            specs,
            sampling,
            options,
            progress=f"eval {env_id.split('/')[-1]}" if cfg.progress else False,
            stats=stats,
        )
    finally:
        if own:
            pool.close()
    run_rates = episode_rates(trajectories)
    warn_aborted(run_rates, f"evaluation of {env_id}")
    subsets = {h: trajectories if mode == "prefix" else [t for t in trajectories if t.horizon == h] for h in horizons}
    rows = [
        horizon_metrics(subsets[h], h, derive=mode == "prefix", resamples=cfg.bootstrap, seed=cfg.seed)
        for h in horizons
    ]
    summary: dict[str, Any] = {
        "env": env_id,
        "model": getattr(policy, "name", "policy"),
        "label": cfg.label or getattr(policy, "name", "policy"),
        "split": cfg.env.split,
        "tasks": len(tasks),
        "samples_per_task": cfg.samples_per_task,
        "sweep": mode,
        "aborted": run_rates["aborted"],
        "aborted_rate": run_rates["aborted_rate"],
        "training_horizon": cfg.training_horizon,
        "horizons": rows,
        "throughput": {
            "episodes": stats.episodes,
            "seconds": round(stats.seconds, 2),
            "episodes_per_s": round(stats.episodes_per_s, 3),
            "generated_tokens_per_s": round(stats.tokens_per_s, 1),
            "generate_seconds": round(stats.generate_seconds, 2),
            "env_seconds": round(stats.env_seconds, 2),
            "mean_batch": round(sum(stats.batch_sizes) / max(len(stats.batch_sizes), 1), 1),
        },
        "rollout": rollout_metrics(trajectories, stats),
        "config": to_dict(cfg),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    kv = task_accuracy_by_step([t for t in trajectories if t.horizon == max(run_horizons)])
    if kv is not None:
        summary["task_accuracy_by_step"] = kv
    if cfg.fit:
        summary["fit"] = _success_fit(subsets, derive=mode == "prefix", resamples=cfg.bootstrap, seed=cfg.seed)
    out = write_results(summary, trajectories if cfg.save_trajectories else None, Path(cfg.output_dir))
    return EvalResult(summary, trajectories, out)


def _success_fit(subsets: dict[int, list[Trajectory]], *, derive: bool, resamples: int, seed: int) -> dict[str, Any]:
    """`fit_success_curve` of each task's success rate at each horizon (the episodes of
    horizon h in `subsets[h]`), as a dict; a fit that cannot be made is an "error" entry
    and a warning: the evaluation's data is kept either way."""
    by_h = {h: per_task_success(episodes, h, derive) for h, episodes in subsets.items()}
    # A task whose episodes all aborted at some horizon has no rate there: it is left out.
    tasks = [task for task in next(iter(by_h.values())) if all(task in rates for rates in by_h.values())]
    per_task = np.array([[np.mean(rates[task]) for rates in by_h.values()] for task in tasks])
    error = "no task has a non-aborted episode at every horizon"
    if tasks:
        try:
            return fit_success_curve(list(by_h), per_task, resamples=resamples, seed=seed).to_dict()
        except RuntimeError as exc:  # the point fit did not converge
            error = str(exc)
    print(f"agentgym: warning: could not fit the success curve: {error}", file=sys.stderr)
    return {"error": error}


def write_results(summary: dict[str, Any], trajectories: list[Trajectory] | None, out: Path) -> Path:
    """Write the data (results.json, results.csv, trajectories.jsonl, metrics.json), then
    the plot: a plot that cannot be drawn is a warning, never a loss of the data."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(jsonio.dumps(summary, indent=2, default=str))
    rows = summary["horizons"]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    if trajectories is not None:
        save_trajectories(trajectories, out / "trajectories.jsonl")
    if "rollout" in summary:
        (out / "metrics.json").write_text(jsonio.dumps(summary["rollout"], indent=2))
    try:
        plot_curves([summary], out / "success_vs_turns.png")
    except Exception as exc:  # the data is written; the picture is a convenience
        print(
            f"agentgym: warning: could not draw {out / 'success_vs_turns.png'}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
    return out
