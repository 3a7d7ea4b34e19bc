"""The README's main job, frozen: its time and its result, per seed.

The protocol is the README's first command after the install: `agentgym train
configs/quickstart.yaml` (warm start, 16 GRPO steps, three evaluations), then `agentgym
eval configs/quickstart_eval.yaml` on the final model (64 held-out tasks, h up to 8,
T = 1), with only `seed=` (and an output folder) changed. For each seed it prints the
wall time of training and of the evaluation, and the result: the mean of success@3..6
over the 64 tasks, with a 95% bootstrap interval (tasks resampled). A faster version of
the code gives "the same result" when its means lie inside the intervals of the old one.

    python bench/main_job.py --seeds 0 1                 # ~20 min a seed before issue 15, ~10 after
    python bench/main_job.py --seeds 0 --out runs/main_job
    python bench/main_job.py --report runs/main_job      # only read finished runs back
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from goals import goal, load_line

HORIZONS = (3, 4, 5, 6)
GOAL_MINUTES = 10.0


def agentgym(*args: str) -> float:
    """Run one agentgym command (this interpreter's); its wall seconds."""
    start = time.perf_counter()
    cmd = [sys.executable, "-c", "import sys; from agentgym.cli import main; sys.exit(main())", *args]
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def run(seed: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    train_s = agentgym("train", "configs/quickstart.yaml", f"seed={seed}", f"output_dir={out}/train", "overwrite=true")
    eval_s = agentgym(
        "eval", "configs/quickstart_eval.yaml", f"policy.model={out}/train/final", f"output_dir={out}/eval"
    )
    times = {"seed": seed, "train_s": train_s, "eval_s": eval_s}
    (out / "times.json").write_text(json.dumps(times))
    return times


def result(out: Path, resamples: int = 2000) -> tuple[float, float, float, int]:
    """Mean success@3..6 of the run's evaluation, its 95% bootstrap interval over tasks, and
    the number of tasks."""
    from agentgym.trajectory import load_trajectories, outcome_at

    by_task: dict[str, list[float]] = {}
    for traj in load_trajectories(out / "eval" / "trajectories.jsonl"):
        won = [outcome_at(traj, h)[0] == "success" for h in HORIZONS]
        by_task.setdefault(traj.task_id, []).append(float(np.mean(won)))
    scores = np.array([np.mean(v) for v in by_task.values()])
    rng = np.random.default_rng(0)
    means = scores[rng.integers(0, len(scores), (resamples, len(scores)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(scores.mean()), float(low), float(high), len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/main_job", help="one folder per seed: OUT/seed-N")
    parser.add_argument("--report", action="store_true", help="read finished runs back, run nothing")
    args = parser.parse_args()
    print(f"at start: {load_line()}", flush=True)
    base = Path(args.out)
    for seed in args.seeds:
        folder = base / f"seed-{seed}"
        times = json.loads((folder / "times.json").read_text()) if args.report else run(seed, folder)
        mean, low, high, tasks = result(folder)
        minutes = (times["train_s"] + times["eval_s"]) / 60
        print(
            f"seed {seed}: train {times['train_s'] / 60:.1f} min + eval {times['eval_s']:.0f} s; "
            f"mean success@3..6 on {tasks} tasks {mean:.3f} (95% CI {low:.3f}-{high:.3f})"
        )
        print(goal(f"seed {seed}: the main job end to end", minutes, GOAL_MINUTES, at_least=False, unit=" min"))
    print(f"at end: {load_line()}")


if __name__ == "__main__":
    main()
