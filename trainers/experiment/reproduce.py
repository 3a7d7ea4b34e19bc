"""`agentgym experiment EXP.yaml --reproduce ARM:SEED`: rerun one run from scratch and
compare its rows with the committed results.csv, digit for digit; before the experiment has
written results.csv (it is still running), with the run's committed record
(`results/cells/ARM/seed-N.json`, kept as soon as the run finished) turned into the rows
results.csv will hold.

On the same machine (the same torch build and thread count) a run is deterministic: the
tasks, the sampling noise and the initialisation are functions of the seed and the step.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

from agentgym.trainers.experiment.config import Experiment
from agentgym.trainers.experiment.report import ROW_KEYS, result_rows
from agentgym.trainers.experiment.runner import CellResult, run_cell

from agentgym.config import ConfigError

__all__ = ["compare_with_results", "reproduce"]


def _as_written(rows: list[dict]) -> list[dict[str, str]]:
    """Rows as results.csv holds them (the csv module's text of each value)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ROW_KEYS))
    writer.writeheader()
    writer.writerows(rows)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def _parse(experiment: Experiment, which: str) -> tuple[str, int]:
    arm, sep, seed_text = which.rpartition(":")
    if not sep or arm not in experiment.cfg.arms or not seed_text.lstrip("-").isdigit():
        raise ConfigError(f"--reproduce {which!r}: expected ARM:SEED with ARM one of {list(experiment.cfg.arms)}")
    return arm, int(seed_text)


def _committed(experiment: Experiment, arm: str, seed: int) -> tuple[Path, list[dict[str, str]]]:
    """The committed rows of (arm, seed): results.csv's, else the run's record's."""
    path = experiment.results / "results.csv"
    rows: list[dict[str, str]] = []
    if path.exists():
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["arm"] == arm and r["seed"] == str(seed)]
    if rows:
        return path, rows
    record = experiment.cell(arm, seed).record
    if record is not None and record.exists():
        return record, _as_written(result_rows([CellResult.from_dict(json.loads(record.read_text()))]))
    raise ConfigError(
        f"--reproduce: neither {path} nor {record} holds arm {arm!r}, seed {seed}: run the experiment first"
    )


def reproduce(experiment: Experiment, which: str) -> int:
    """Rerun (arm, seed) from scratch in `output_dir/reproduce/` and compare; 0 when every
    row is identical to results.csv's."""
    arm, seed = _parse(experiment, which)
    _committed(experiment, arm, seed)  # before an hour of training, not after
    scratch = experiment.out / "reproduce" / arm / f"seed-{seed}"
    if scratch.exists():
        shutil.rmtree(scratch)
    result = run_cell(experiment.cell(arm, seed, output_dir=scratch), f"reproduce {arm} seed {seed}")
    return compare_with_results(experiment, result)


def compare_with_results(experiment: Experiment, result: CellResult) -> int:
    """Compare a run's rows with results.csv's rows of its arm and seed, as text: 0 when
    all are identical, else 1 with the differing rows on stderr."""
    arm, seed = result.arm, result.seed
    committed_path, committed = _committed(experiment, arm, seed)
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
