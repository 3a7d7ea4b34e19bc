"""Running an experiment's cells: one after another or as Ray tasks, each a budgeted
training run whose evaluations become the cell's results (`cell.json` in its folder).

A cell whose `cell.json` exists with the same configuration is skipped, and so is one whose
copy of it is in the results folder (`results_dir/cells/ARM/seed-N.json`, committed with the
report, so that a fresh checkout without the run folders goes on where the last one
stopped); a cell whose run was interrupted continues from its checkpoint (`resume=true`), which reproduces exactly
what an uninterrupted run would have done. So an interrupted experiment resumes by
running the same command again.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.trainers.config import TrainConfig
from agentgym.trainers.experiment.config import Cell, Experiment

from agentgym import jsonio
from agentgym.config import ConfigError, from_dict
from agentgym.errors import UserError

__all__ = ["CellResult", "ExperimentStopped", "collect_cell", "run_cell", "run_experiment"]

CELL_FILE = "cell.json"


class ExperimentStopped(UserError):
    """A run stopped by a signal: the experiment stops; the same command resumes it."""


@dataclass
class CellResult:
    """What one (arm, seed) run measured: per evaluation point, success@h overall and per task."""

    arm: str
    seed: int
    settings: dict[str, Any]
    compute: dict[str, Any]
    wall_s: float
    points: list[dict[str, Any]] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        return cls(**data)


def _evaluations(records: list[dict[str, Any]]) -> list[tuple[list[float], int, dict[str, Any]]]:
    """(budget points, steps done, the record) of each evaluation in a run's metrics log."""
    found = []
    for r in records:
        if "compute_points" in r:
            done = r["step"] if "eval_at" in r else r["step"] + 1  # a step's record has its index
            found.append((r["compute_points"], done, r))
    return found


def collect_cell(cell: Cell, wall_s: float, compute: dict[str, Any]) -> CellResult:
    """A finished run's results, read from its folder: each evaluation's results.json and
    trajectories (per task, for intervals over tasks) and the training curve."""
    from agentgym.eval.metrics import per_task_success
    from agentgym.trajectory_files import load_trajectories

    result = CellResult(cell.arm, cell.seed, cell.settings, compute, round(wall_s, 1))
    records = [json.loads(line) for line in (cell.out / "metrics.jsonl").read_text().splitlines()]
    for points, done, record in _evaluations(records):
        folder = cell.out / "eval" / f"step-{done:06d}"
        summary = json.loads((folder / "results.json").read_text())
        trajs = load_trajectories(folder / "trajectories.jsonl")
        derive = summary["sweep"] == "prefix"
        per_task: dict[str, list[float]] = {}
        for h in [r["horizon"] for r in summary["horizons"]]:
            subset = trajs if derive else [t for t in trajs if t.horizon == h]
            for task, values in per_task_success(subset, h, derive=derive).items():
                per_task.setdefault(task, []).append(sum(values) / len(values))
        used = record.get("compute_used", record.get("used", 0.0)) if done else 0.0
        for point in points:
            result.points.append(
                {
                    "point": point,
                    "steps": done,
                    "compute_used": used,
                    "horizons": [
                        {k: r[k] for k in ("horizon", "success", "success_ci_low", "success_ci_high", "episodes")}
                        for r in summary["horizons"]
                    ],
                    "per_task": per_task,
                }
            )
    for r in records:
        if "eval_at" not in r and "reward_mean" in r:
            keys = ("step", "horizon", "compute_used", "reward_mean", "success_rate", "invalid_action_rate")
            result.training.append({k: r.get(k) for k in keys})
    return result


def finished_result(cell: Cell) -> CellResult | None:
    """The cell's result when its run finished with the same settings (in its folder, or as
    its record beside the results); None when it has not finished; a `ConfigError` when a
    run of other settings finished there (it would be mixed into the results)."""
    for done in (cell.out / CELL_FILE, cell.record):
        if done is None or not done.exists():
            continue
        result = CellResult.from_dict(json.loads(done.read_text()))
        if not cell.same_settings(result.settings):
            raise ConfigError(
                f"{done} holds a finished run of another configuration of arm {cell.arm!r} (the experiment or its "
                "base changed): delete it to rerun that run, or set another output_dir and results_dir"
            )
        return result
    return None


def _keep(cell: Cell, result: CellResult) -> None:
    text = jsonio.dumps(result.to_dict(), indent=1)
    (cell.out / CELL_FILE).write_text(text)
    if cell.record is not None:
        cell.record.parent.mkdir(parents=True, exist_ok=True)
        cell.record.write_text(text)


def run_cell(cell: Cell, label: str = "") -> CellResult:
    """Train the cell's run (continuing an interrupted one) and collect its results into
    `cell.json`; a finished cell of the same configuration is read back instead."""
    result = finished_result(cell)
    if result is not None:
        if cell.record is not None and not cell.record.exists():
            _keep(cell, result)  # a run that finished before records were kept
        return result
    from agentgym.trainers import build_trainer

    cfg = cell.train
    cfg.resume = (cell.out / "metrics.jsonl").exists()  # an interrupted run continues where it stopped
    t0 = time.perf_counter()
    trainer = build_trainer(cfg)
    trainer.progress_label = label or f"{cell.arm} seed {cell.seed}"
    outcome = trainer.train()
    if outcome["stopped"]:
        raise ExperimentStopped(
            f"stopped by {outcome['stopped']} in arm {cell.arm!r}, seed {cell.seed}: run the same command to resume"
        )
    result = collect_cell(cell, time.perf_counter() - t0, outcome["compute"])
    _keep(cell, result)
    return result


def _run_cell_data(data: dict[str, Any], arm: str, seed: int, record: str | None, label: str) -> dict[str, Any]:
    """`run_cell` in a Ray task (plain data in and out)."""
    cell = Cell(arm, seed, from_dict(TrainConfig, data), Path(record) if record else None)
    return run_cell(cell, label).to_dict()


def run_experiment(
    experiment: Experiment, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)
) -> list[CellResult]:
    """Every cell, skipping finished ones; one after another, or `parallel` at once as Ray
    tasks. A line per cell says which arm and seed runs, how long it took, and the ETA."""
    cells = experiment.cells()
    results: dict[tuple[str, int], CellResult] = {}
    todo = []
    for c in cells:
        result = finished_result(c)  # a run of other settings in a cell's folder stops everything here
        if result is None:
            todo.append(c)
        else:
            results[(c.arm, c.seed)] = result
    if len(todo) < len(cells):
        log(f"experiment {experiment.cfg.name}: {len(cells) - len(todo)} of {len(cells)} runs already done")
    finished, walls = 0, []

    def report(c: Cell, r: CellResult) -> None:
        nonlocal finished
        finished += 1
        results[(c.arm, c.seed)] = r
        left = len(todo) - finished
        walls.append(r.wall_s)
        # The runs still to start or in flight, `parallel` at a time, each as long as the mean so far.
        eta = sum(walls) / len(walls) * math.ceil(left / experiment.cfg.parallel) if left else 0.0
        end = r.points[-1]["horizons"] if r.points else []
        mean = sum(h["success"] for h in end) / len(end) if end else float("nan")
        log(
            f"[{finished}/{len(todo)}] arm {c.arm} seed {c.seed}: {r.wall_s / 60:.1f} min, "
            f"{r.compute.get('steps')} steps, mean success@h at the end {mean:.3f}; ETA {eta / 60:.0f} min"
        )

    if experiment.cfg.parallel > 1 and len(todo) > 1:
        _run_on_ray(experiment, todo, report)
    else:
        for i, c in enumerate(todo):
            log(f"[{i + 1}/{len(todo)}] arm {c.arm} seed {c.seed}: training ({c.out})")
            report(c, run_cell(c, f"[{i + 1}/{len(todo)}] {c.arm} seed {c.seed}"))
    return [results[(c.arm, c.seed)] for c in cells]


def _run_on_ray(experiment: Experiment, todo: list[Cell], report: Callable[[Cell, CellResult], None]) -> None:
    import ray

    from agentgym.config import to_dict
    from agentgym.rollout.workers import init_ray

    threads = max(1, experiment.cfg.threads or todo[0].train.threads or 1)
    started = not ray.is_initialized()
    if started:
        init_ray(num_cpus=experiment.cfg.parallel * threads)
    try:
        task = ray.remote(num_cpus=threads)(_run_cell_data)
        pending = {
            task.remote(to_dict(c.train), c.arm, c.seed, c.record and str(c.record), f"{c.arm} seed {c.seed}"): c
            for c in todo
        }
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready[0])
            report(cell, CellResult.from_dict(ray.get(ready[0])))
    finally:
        if started:
            ray.shutdown()
