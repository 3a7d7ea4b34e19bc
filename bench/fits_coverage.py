"""Coverage of the curve fits' 95% intervals (agentgym/eval/fits/), with many datasets.

The same checks as tests/test_fits.py (its data generators, drawn from the models with
known parameters), at a size that measures coverage to about +-1%: per parameter, the
share of datasets whose interval contains the truth. Also the two intervals the fits do
not use, to show why: points resampled when the seeds have effects of their own, and the
group bootstrap's plain percentile interval before its small-sample widening.

    python bench/fits_coverage.py                                  # 400 datasets x 1000 resamples, ~20 min on 2 cores
    python bench/fits_coverage.py --datasets 100 --resamples 300   # a quick look
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from goals import load_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.test_fits

from tests.test_fits import compute_coverage, success_coverage

CHECKS = {
    "success curve, tasks resampled (200 tasks, 8 horizons)": success_coverage,
    "compute curve, points resampled, noise per point (3 seeds x 30 points)": partial(compute_coverage, by_seed=False),
    "compute curve, seeds resampled and widened, seed effects (3 seeds x 30 points)": partial(
        compute_coverage, by_seed=True, seed_effect=0.03
    ),
    "(not used) compute curve, seeds resampled, plain percentile interval, seed effects": partial(
        compute_coverage, by_seed=True, seed_effect=0.03, plain=True
    ),
    "(not used) compute curve, points resampled, seed effects": partial(
        compute_coverage, by_seed=False, seed_effect=0.03
    ),
}


def _chunk(check: str, datasets: int, resamples: int, seed: int) -> dict[str, float]:
    rates = CHECKS[check](datasets, resamples, seed)
    return {name: rate * datasets for name, rate in rates.items()}


def measure(check: str, datasets: int, resamples: int, jobs: int) -> dict[str, float]:
    """Coverage per parameter over `datasets` datasets, split over `jobs` processes (each
    its own datasets: seeds 10^6 apart)."""
    sizes = [datasets // jobs + (j < datasets % jobs) for j in range(jobs)]
    with ProcessPoolExecutor(jobs) as pool:
        parts = list(pool.map(_chunk, [check] * jobs, sizes, [resamples] * jobs, [10**6 * j for j in range(jobs)]))
    return {name: sum(p[name] for p in parts) / datasets for name in parts[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=400, help="synthetic datasets per check")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per fit")
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument("--only", type=int, nargs="*", help="the checks to run, by number (0-based)")
    args = parser.parse_args()
    se = math.sqrt(0.95 * 0.05 / args.datasets)
    print(
        f"{args.datasets} datasets x {args.resamples} resamples a check; at a true 95%, one coverage is +-{se:.3f} (1 sd)"
    )
    for i, check in enumerate(CHECKS):
        if args.only is not None and i not in args.only:
            continue
        start = time.perf_counter()
        coverage = measure(check, args.datasets, args.resamples, args.jobs)
        figures = ", ".join(f"{name} {rate:.3f}" for name, rate in coverage.items())
        print(f"[{i}] {check}: {figures} ({time.perf_counter() - start:.0f} s)", flush=True)
    print(load_line())


if __name__ == "__main__":
    main()
