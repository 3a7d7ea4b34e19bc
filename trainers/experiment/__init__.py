"""`agentgym experiment`: controlled comparisons of training settings at equal compute.

    experiment = load_experiment("experiments/e1_horizon_curriculum/experiment.yaml")
    cells = run_experiment(experiment)          # every (arm, seed); finished ones are skipped
    write_report(experiment, cells, command, wall_s)

See config.py (the file's keys), runner.py (running and resuming), report.py (what is written).
"""

from agentgym.trainers.experiment.config import Cell, Experiment, ExperimentConfig, load_experiment
from agentgym.trainers.experiment.report import result_rows, write_report
from agentgym.trainers.experiment.runner import CellResult, ExperimentStopped, run_cell, run_experiment

__all__ = [
    "Cell",
    "CellResult",
    "Experiment",
    "ExperimentConfig",
    "ExperimentStopped",
    "load_experiment",
    "result_rows",
    "run_cell",
    "run_experiment",
    "write_report",
]
