"""Coverage of an experiment's paired difference between two arms (agentgym/eval/compare.py)
on synthetic experiments with a known difference: 3 seeds x 64 tasks, tasks of varied
difficulty, and a seed-to-seed effect of each arm's run (RL runs vary) of several sizes.

    python bench/compare_coverage.py [--experiments 200] [--resamples 400]

Prints, per seed effect, how often the 95% interval covers the true difference; with few
seeds and a large seed effect the crossed bootstrap is too narrow, which the report's
reader should know. (The quickstart's three seeds vary by about 0.045 in mean success.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import goal, load_line

from agentgym.eval.compare import compare


def coverage(seed_sd: float, experiments: int, resamples: int, seeds: int = 3, tasks: int = 64) -> float:
    rng = np.random.default_rng(1)
    truth, hits = 0.05, 0
    for _ in range(experiments):
        difficulty = rng.normal(0, 0.25, tasks)  # shared by the arms: the comparison is paired by task

        def arm(p: float, difficulty: np.ndarray = difficulty) -> np.ndarray:
            run = rng.normal(0, seed_sd, seeds)  # each (arm, seed) run's own luck
            prob = np.clip(p + run[:, None] + difficulty[None, :], 0, 1)
            return (rng.random((seeds, tasks)) < prob)[:, :, None].astype(float)

        a, b = arm(0.55), arm(0.50)
        d = compare(a, b, resamples=resamples, seed=int(rng.integers(2**31)))
        hits += d.low <= truth <= d.high
    return hits / experiments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", type=int, default=200)
    ap.add_argument("--resamples", type=int, default=400)
    args = ap.parse_args()
    print(load_line())
    for sd in (0.0, 0.045, 0.08, 0.15):
        c = coverage(sd, args.experiments, args.resamples)
        print(f"seed effect sd {sd:.3f}: coverage {c:.3f} over {args.experiments} experiments")
        if sd <= 0.08:
            print("  " + goal("coverage", c, 0.93))
    print(load_line())


if __name__ == "__main__":
    main()
