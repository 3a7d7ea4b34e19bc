"""`agentgym experiment EXP.yaml --reproduce ARM:SEED`: rerun one run from scratch and
compare its rows with the committed results.csv, digit for digit.

On the same machine (the same torch build and thread count) a run is deterministic: the
tasks, the sampling noise and the initialisation are functions of the seed and the step.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys

from agentgym.trainers.experiment.config import Experiment
from agentgym.trainers.experiment.report import ROW_KEYS, result_rows
from agentgym.trainers.experiment.runner import run_cell

from agentgym.config import ConfigError

__all__ = ["reproduce"]


def _as_written(rows: list[dict]) -> list[dict[str, str]]:
    """Rows as results.csv holds them (the csv module's text of each value)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ROW_KEYS))
    writer.writeheader()
    writer.writerows(rows)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def reproduce(experiment: Experiment, which: str) -> int:
    """Rerun (arm, seed) in `output_dir/reproduce/` and compare; 0 when every row is identical."""
    arm, sep, seed_text = which.rpartition(":")
    if not sep or arm not in experiment.cfg.arms or not seed_text.lstrip("-").isdigit():
        raise ConfigError(f"--reproduce {which!r}: expected ARM:SEED with ARM one of {list(experiment.cfg.arms)}")
    seed = int(seed_text)
    committed_path = experiment.results / "results.csv"
    if not committed_path.exists():
        raise ConfigError(f"--reproduce: {committed_path} does not exist: run the experiment first")
    with open(committed_path, newline="") as fh:
        committed = [r for r in csv.DictReader(fh) if r["arm"] == arm and r["seed"] == str(seed)]
    if not committed:
        raise ConfigError(f"--reproduce: {committed_path} has no rows of arm {arm!r}, seed {seed}")
    scratch = experiment.out / "reproduce" / arm / f"seed-{seed}"
    if scratch.exists():
        shutil.rmtree(scratch)
    cell = experiment.cell(arm, seed, output_dir=scratch)
    result = run_cell(cell, f"reproduce {arm} seed {seed}")
    fresh = _as_written(result_rows([result]))
    differ = [(a, b) for a, b in zip(committed, fresh, strict=False) if a != b]
    if len(committed) == len(fresh) and not differ:
        print(f"reproduced: arm {arm}, seed {seed}: all {len(fresh)} rows identical to {committed_path} "
              f"({result.wall_s / 60:.1f} min)")  # fmt: skip
        return 0
    print(f"NOT reproduced: arm {arm}, seed {seed}: {len(differ)} of {len(committed)} rows differ", file=sys.stderr)
    for a, b in differ[:10]:
        print(f"  committed {dict(a)}\n  rerun     {dict(b)}", file=sys.stderr)
    if len(committed) != len(fresh):
        print(f"  committed {len(committed)} rows, rerun {len(fresh)}", file=sys.stderr)
    return 1
