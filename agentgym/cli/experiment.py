"""`agentgym experiment EXPERIMENT.yaml`: arms x seeds at equal compute, one evaluation
protocol, and a report with intervals over seeds and tasks.

    agentgym experiment experiments/e1_horizon_curriculum/experiment.yaml
    agentgym experiment EXP.yaml parallel=2 seeds=[0,1]         # overrides of the experiment file
    agentgym experiment EXP.yaml --reproduce curriculum:0       # rerun one run, compare with results.csv
    agentgym experiment --help-config

Finished runs are skipped and an interrupted one continues from its checkpoint, so running
the same command again resumes an experiment. It writes report.md, results.csv (one row per
arm, seed, budget point and horizon), tasks.csv, training.csv and plots to results_dir.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from agentgym.config import ConfigError, config_help


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "experiment",
        help="compare training settings at equal compute, with seeds and intervals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="the experiment file (YAML)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the experiment file")
    p.add_argument(
        "--reproduce",
        metavar="ARM:SEED",
        help="rerun one (arm, seed) run from scratch in a scratch folder and compare its rows with results.csv",
    )
    p.add_argument("--help-config", action="store_true", help="list every key of an experiment file")
    return p


def run(args: argparse.Namespace) -> int:
    from agentgym.trainers.experiment import (
        ExperimentConfig,
        ExperimentStopped,
        load_experiment,
        run_experiment,
        write_report,
    )

    if args.help_config:
        print("\n".join(config_help(ExperimentConfig)))
        return 0
    if not args.config:
        raise ConfigError("agentgym experiment needs an experiment file: agentgym experiment EXPERIMENT.yaml")
    experiment = load_experiment(args.config, args.overrides)
    if args.reproduce:
        from agentgym.trainers.experiment.reproduce import reproduce

        return reproduce(experiment, args.reproduce)
    command = shlex.join(["agentgym", "experiment", args.config, *args.overrides])
    t0 = time.perf_counter()
    try:
        cells = run_experiment(experiment)
    except ExperimentStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 130
    report = write_report(experiment, cells, command, time.perf_counter() - t0)
    print(f"report:  {report}")
    print(f"results: {Path(experiment.results) / 'results.csv'}")
    return 0
