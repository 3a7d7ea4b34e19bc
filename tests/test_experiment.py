"""`agentgym experiment`: arms x seeds at equal compute, resumable, reported with intervals
over seeds and tasks, and reproducible run by run."""

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from agentgym.trainers.experiment import load_experiment, run_experiment, write_report
from agentgym.trainers.experiment import runner as runner_module
from agentgym.trainers.experiment.runner import run_cell

from agentgym.cli import main
from agentgym.config import ConfigError
from agentgym.eval.compare import compare, estimate
from tests.test_train_support import COIN_ID, one_torch_thread, signal_during_step  # noqa: F401 (fixture)

BASE = {
    "policy": {"model": "tiny-random"},
    "env": {"id": COIN_ID},
    "sampling": {"max_new_tokens": 4},
    "rollout": {"max_concurrent": 8},
    "tasks_per_step": 2,
    "samples_per_task": 4,
    "optim": {"lr": 0.01, "micro_batch": 4, "schedule": "linear"},
    "tensorboard": False,
    "save_final": False,
    "checkpoint_every": 1,
    "progress": False,
}


def write_experiment(tmp_path: Path, **changes) -> Path:
    """A tiny experiment: 2 arms (horizon 1 vs a 1 -> 3 curriculum) x 2 seeds on CoinEnv,
    a budget of 40 env steps, evaluated before, midway and at the end."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    exp = {
        "name": "tiny",
        "base": "base.yaml",
        "arms": {
            "short": {"curriculum.kind": "fixed", "curriculum.start": 1},
            "curriculum": {
                "curriculum.kind": "stepwise",
                "curriculum.rounds": [1, 3],
                "curriculum.every_fraction": 0.5,
            },
        },
        "seeds": [0, 1],
        "budget": {"unit": "env_steps", "total": 40},
        "eval": {"at": [0.0, 0.5, 1.0], "horizons": [1, 2, 3], "num_tasks": 4, "samples_per_task": 2},
        "output_dir": str(tmp_path / "runs"),
        "results_dir": str(tmp_path / "results"),
        "bootstrap": 200,
        "progress": None,
    }
    del exp["progress"]
    exp.update(changes)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_tiny_experiment_runs_end_to_end_at_equal_compute_and_writes_its_report(tmp_path, capsys):
    path = write_experiment(tmp_path, reward_range=[0, 1])
    assert main(["experiment", str(path)]) == 0
    results = tmp_path / "results"
    rows = _csv(results / "results.csv")
    assert len(rows) == 2 * 2 * 3 * 3  # arms x seeds x budget points x horizons
    assert {(r["arm"], r["seed"], r["point"]) for r in rows} >= {("short", "0", "0.0"), ("curriculum", "1", "1.0")}
    for r in rows:
        assert 0 <= float(r["success"]) <= 1
    # Equal compute: every run stops at the first step boundary past 40 env steps.
    train = _csv(results / "training.csv")
    for arm in ("short", "curriculum"):
        for seed in ("0", "1"):
            used = [float(r["compute_used"]) for r in train if r["arm"] == arm and r["seed"] == seed]
            assert used[-1] >= 40 > used[-2], (arm, seed, used)
    horizons = {r["horizon"] for r in train if r["arm"] == "curriculum"}
    assert horizons == {"1", "3"}  # the curriculum raised the horizon at half the budget
    report = (results / "report.md").read_text()
    for section in ("## Design", "## Success at the end of the budget", "## Differences between arms", "## Fits"):
        assert section in report
    assert "| short - curriculum |" in report
    # The reward fits: bounded to the reward range, and flagged as not comparable across
    # arms that trained at different horizons (short at 1, the curriculum at 1 then 3).
    assert "bounded to the reward range [0, 1]" in report and "trained at different horizons" in report
    fitted = [
        line.split("|")[5]
        for line in report.split("## Fits")[1].splitlines()
        if line.startswith(("| short |", "| curriculum |")) and "no fit" not in line.split("|")[5]
    ]
    assert fitted
    for cell in fitted:
        value, low, high = (float(x) for x in re.findall(r"-?[\d.]+", cell))
        assert 0 <= low <= value <= high <= 1, cell
    for png in ("success_vs_turns.png", "success_vs_compute.png", "reward_vs_compute.png"):
        assert (results / png).stat().st_size > 1000
    err = capsys.readouterr().err
    assert "[4/4] arm curriculum seed 1" in err and "ETA" in err
    # The runs keep the checkpoints of the evaluation points.
    assert (tmp_path / "runs" / "short" / "seed-0" / "checkpoints" / "at-0.5" / "state.json").exists()


def test_an_interrupted_experiment_resumes_to_the_results_of_an_uninterrupted_one(tmp_path, monkeypatch):
    whole = write_experiment(tmp_path / "a")
    assert main(["experiment", str(whole)]) == 0

    cut = write_experiment(tmp_path / "b")
    real = runner_module.build_trainer if hasattr(runner_module, "build_trainer") else None
    from agentgym.trainers import build_trainer

    calls = []

    def stopping(cfg):  # the third run (arm short, seed 1) gets a SIGTERM during its 2nd step
        calls.append(cfg.output_dir)
        trainer = build_trainer(cfg)
        return signal_during_step(trainer, step=1) if len(calls) == 3 else trainer

    monkeypatch.setattr("agentgym.trainers.build_trainer", stopping)
    assert main(["experiment", str(cut)]) == 130
    assert not (tmp_path / "b" / "results" / "results.csv").exists()
    monkeypatch.setattr("agentgym.trainers.build_trainer", build_trainer if real is None else real)
    assert main(["experiment", str(cut)]) == 0
    a, b = (_csv(tmp_path / d / "results" / "results.csv") for d in ("a", "b"))
    assert a == b
    ta, tb = (_csv(tmp_path / d / "results" / "training.csv") for d in ("a", "b"))
    assert ta == tb


def test_finished_runs_are_skipped_and_a_changed_arm_is_refused_not_mixed(tmp_path, monkeypatch):
    path = write_experiment(tmp_path, seeds=[0])
    experiment = load_experiment(path)
    run_experiment(experiment, log=lambda s: None)

    def no_training(cfg):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("agentgym.trainers.build_trainer", no_training)
    cells = run_experiment(load_experiment(path), log=lambda s: None)
    assert [(c.arm, c.seed) for c in cells] == [("short", 0), ("curriculum", 0)]
    changed = write_experiment(tmp_path, seeds=[0], overrides={"optim.lr": 0.02})
    with pytest.raises(ConfigError, match="holds a finished run of another configuration"):
        run_experiment(load_experiment(changed), log=lambda s: None)


def test_a_fresh_checkout_without_the_run_folders_goes_on_from_the_committed_cell_records(tmp_path, monkeypatch):
    path = write_experiment(tmp_path, seeds=[0])
    experiment = load_experiment(path)
    first = run_experiment(experiment, log=lambda s: None)
    records = sorted(p.relative_to(tmp_path / "results") for p in (tmp_path / "results" / "cells").rglob("*.json"))
    assert [str(p) for p in records] == ["cells/curriculum/seed-0.json", "cells/short/seed-0.json"]
    shutil.rmtree(tmp_path / "runs")  # a new machine: the run folders are gone, the results are committed

    def no_training(cfg):
        raise AssertionError("a run with a committed record was trained again")

    monkeypatch.setattr("agentgym.trainers.build_trainer", no_training)
    again = run_experiment(load_experiment(path), log=lambda s: None)
    assert [c.to_dict() for c in again] == [c.to_dict() for c in first]
    # A changed arm is refused against the record too, not mixed in.
    changed = write_experiment(tmp_path, seeds=[0], overrides={"optim.lr": 0.02})
    with pytest.raises(ConfigError, match=r"seed-0\.json holds a finished run of another configuration"):
        run_experiment(load_experiment(changed), log=lambda s: None)


def test_reproduce_reruns_one_cell_and_compares_it_digit_for_digit(tmp_path, capsys):
    path = write_experiment(tmp_path, seeds=[0])
    assert main(["experiment", str(path)]) == 0
    capsys.readouterr()
    assert main(["experiment", str(path), "--reproduce", "curriculum:0"]) == 0
    assert "reproduced: arm curriculum, seed 0: all 9 rows identical" in capsys.readouterr().out
    # A committed row that the run does not give is reported.
    results = tmp_path / "results" / "results.csv"
    rows = _csv(results)
    next(r for r in rows if r["arm"] == "curriculum")["success"] = "0.123456"
    with open(results, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["experiment", str(path), "--reproduce", "curriculum:0"]) == 1
    assert "NOT reproduced: arm curriculum, seed 0: 1 of 9 rows differ" in capsys.readouterr().err


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"arms": {"a": {"seed": 3}, "b": {}}}, "arms.a.seed: the experiment sets seed"),
        ({"arms": {"a": {"compute.total": 3}, "b": {}}}, "arms.a.compute.total: the experiment sets compute"),
        ({"arms": {"a": {"curriculum.kindd": "fixed"}, "b": {}}}, "arms.a .*curriculum.kindd"),
        ({"arms": {"a": {"curriculum.kind": "stepwise"}, "b": {}}}, "arms.a .*curriculum.every_fraction"),
        ({"arms": {"a": {}}}, "arms: an experiment compares at least two arms"),
        ({"base": "missing.yaml"}, "base: 'missing.yaml' does not exist"),
        ({"budget": {"unit": "seconds", "total": 3}}, "budget.unit must be one of"),
        ({"eval": {"at": [0.5]}}, r"eval.at must include 1.0"),
        ({"seeds": [1, 1]}, "seeds must be distinct"),
        ({"reward_range": [1, 0]}, r"reward_range must be \[low, high\] with low < high"),
    ],
)
def test_a_bad_experiment_file_is_one_line_naming_the_key(tmp_path, capsys, changes, message):
    path = write_experiment(tmp_path, **changes)
    assert main(["experiment", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err

    assert re.search(message, err), err


def test_runs_in_parallel_on_ray_give_the_rows_of_runs_one_after_another(tmp_path):
    """Two Ray tasks at once (a built-in env: Ray workers import the registry anew)."""
    changes = {
        "seeds": [0],
        "overrides": {"env.id": "agentgym/GuessNumber-16-v0", "env.kwargs": {"guess_tool": False}},
        "budget": {"unit": "generated_tokens", "total": 48},
    }
    seq = write_experiment(tmp_path / "seq", **changes)
    par = write_experiment(tmp_path / "par", parallel=2, threads=1, **changes)
    assert main(["experiment", str(seq), "threads=1"]) == 0
    assert main(["experiment", str(par)]) == 0
    a, b = (_csv(tmp_path / d / "results" / "results.csv") for d in ("seq", "par"))
    assert a == b and len(a) == 2 * 3 * 3


def test_a_paired_comparison_removes_what_the_arms_share():
    """Tasks of very different difficulty, and arm a better by 0.1 on every one: paired by
    task, the interval of the difference is far narrower than either arm's own."""
    rng = np.random.default_rng(0)
    difficulty = rng.random(200)
    b = np.repeat(np.repeat(difficulty[None, :, None], 3, axis=0), 2, axis=2) * 0.8
    a = b + 0.1
    d = compare(a, b, resamples=500)
    own = estimate(a, resamples=500)
    assert d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)
    assert own.high - own.low > 0.05
    noisy = compare(a + rng.normal(0, 0.2, a.shape), b, resamples=500)
    assert noisy.low < 0.1 < noisy.high and noisy.detectable == pytest.approx(2.8016 * noisy.se, rel=1e-4)


def test_results_rows_are_the_cells_evaluations(tmp_path):
    path = write_experiment(tmp_path, seeds=[0])
    experiment = load_experiment(path)
    cells = run_experiment(experiment, log=lambda s: None)
    write_report(experiment, cells, "test", 1.0)
    cell = json.loads((tmp_path / "runs" / "short" / "seed-0" / "cell.json").read_text())
    end = next(p for p in cell["points"] if p["point"] == 1.0)
    rows = [r for r in _csv(tmp_path / "results" / "results.csv") if r["arm"] == "short" and r["point"] == "1.0"]
    assert [float(r["success"]) for r in rows] == [h["success"] for h in end["horizons"]]
    # Each run's success@h is the mean of its per-task success rates (2 samples per task).
    for k, r in enumerate(rows):
        assert float(r["success"]) == pytest.approx(np.mean([v[k] for v in end["per_task"].values()]))


def test_reproduce_compares_with_the_runs_committed_record_while_the_experiment_has_no_results_csv(tmp_path, capsys):
    """A run's record is kept as soon as it finishes: one run can be reproduced while the
    others still train (results.csv is written when they all have)."""
    path = write_experiment(tmp_path, seeds=[0])
    experiment = load_experiment(path)
    cell = experiment.cell("short", 0)
    run_cell(cell, "short seed 0")  # one run finished: its record, no results.csv yet
    assert cell.record.exists() and not (tmp_path / "results" / "results.csv").exists()
    assert main(["experiment", str(path), "--reproduce", "short:0"]) == 0
    assert f"all 9 rows identical to {cell.record}" in capsys.readouterr().out
    assert main(["experiment", str(path), "--reproduce", "curriculum:0"]) == 2  # nothing committed for it
    assert "neither" in capsys.readouterr().err
