"""`ExperimentConfig`: what `agentgym experiment EXPERIMENT.yaml` reads, typed like the train
config, and the train config of each (arm, seed) cell it derives.

An experiment is a base train config, named arms (each a set of dotted overrides of it),
seeds, one compute budget every arm gets, and one evaluation protocol every arm is scored
by. The experiment owns the settings that make the comparison fair, so an arm may not
change them: the seed, the budget (`compute.*`), the evaluation (`eval.*`), the step cap
and the output folder.

Example (experiments/e1_horizon_curriculum/experiment.yaml has a real one):

    name: curriculum_vs_fixed
    base: ../../configs/quickstart.yaml      # relative to this file
    arms:
      curriculum: {curriculum.kind: stepwise, curriculum.rounds: [2, 4, 6], curriculum.every_fraction: 0.334}
      short: {curriculum.kind: fixed, curriculum.start: 2}
    seeds: [0, 1, 2]
    budget: {unit: generated_tokens, total: 40000}
    eval: {at: [0.0, 0.5, 1.0], horizons: [1, 2, 4, 8], num_tasks: 64}
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from agentgym.trainers.config import TrainConfig

from agentgym.config import ConfigError, from_dict, help_field, load_config, to_dict

__all__ = ["Cell", "ExperimentConfig", "load_experiment"]

#: Settings the experiment owns: an arm that changed them would not be compared fairly.
OWNED = ("seed", "output_dir", "compute", "eval", "steps", "resume", "overwrite")

#: The step cap of a budgeted cell: its budget ends it, never the cap.
STEP_CAP = 1_000_000


@dataclass
class ExperimentBudget:
    unit: Literal["generated_tokens", "episodes", "env_steps"] = help_field(
        "generated_tokens",
        "what every arm gets equally: generated_tokens (sampled by the policy in training rollouts), episodes, "
        "or env_steps (turns)",
    )
    total: float = help_field(None, "the budget of each run, in `unit`")

    def __post_init__(self) -> None:
        if self.total is None or self.total <= 0:
            raise ConfigError(f"budget.total must be a positive amount of budget.unit, got {self.total}")


@dataclass
class ExperimentEval:
    at: list[float] = help_field(
        [0.0, 0.5, 1.0], "fractions of the budget where every run is evaluated (0: before training, 1: the end)"
    )
    horizons: list[int] = help_field([1, 2, 4, 8], "turn budgets evaluated (success@h)")
    split: str = help_field("test", "split of the evaluation tasks")
    num_tasks: int | None = help_field(64, "first N tasks of the split (null: all)")
    samples_per_task: int = help_field(1, "episodes per task at each point")
    temperature: float | None = help_field(None, "sampling temperature (null: the training one)")

    def __post_init__(self) -> None:
        if not self.at or any(not 0 <= f <= 1 for f in self.at):
            raise ConfigError(f"eval.at must be fractions of the budget in [0, 1], got {self.at}")
        if 1.0 not in self.at:
            raise ConfigError(f"eval.at must include 1.0 (the end of the budget), got {self.at}")
        self.at = sorted(set(self.at))
        if not self.horizons or any(h < 1 for h in self.horizons):
            raise ConfigError(f"eval.horizons must be positive integers, got {self.horizons}")


@dataclass
class ExperimentConfig:
    name: str = help_field(None, "the experiment's name (report title, folder names)")
    base: str = help_field(None, "the base train config (YAML), relative to the experiment file")
    arms: dict[str, Any] = help_field(
        None, "name -> dotted overrides of the base (e.g. {curriculum.kind: fixed}); at least two"
    )
    overrides: dict[str, Any] = help_field({}, "dotted overrides of the base applied to every arm")
    seeds: list[int] = help_field([0, 1, 2], "seeds: every arm runs once per seed")
    budget: ExperimentBudget = help_field(None, "the compute budget of every run", default_factory=ExperimentBudget)
    eval: ExperimentEval = help_field(
        None, "the evaluation protocol every arm is scored by", default_factory=ExperimentEval
    )
    parallel: int = help_field(1, "runs at once: 1 = one after another; more = Ray tasks on this machine")
    threads: int | None = help_field(None, "torch CPU threads of each run (null: the base config's)")
    output_dir: str = help_field(
        "runs/experiments/{name}", "the runs (checkpoints, evaluations): large, not for committing"
    )
    results_dir: str | None = help_field(
        None, "report.md, results.csv and the plots (null: output_dir/results); small, for committing"
    )
    bootstrap: int = help_field(2000, "bootstrap resamples of the intervals")
    fit: bool = help_field(True, "fit success@h and reward-vs-compute curves in the report")
    reward_range: list[float] | None = help_field(
        None, "[low, high]: the rewards the environment can give; bounds the fitted reward asymptote (null: unbounded)"
    )

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name: an experiment needs a name")
        if not self.base:
            raise ConfigError("base: the base train config (a YAML path relative to the experiment file)")
        if not isinstance(self.arms, dict) or len(self.arms) < 2:
            raise ConfigError(f"arms: an experiment compares at least two arms, got {self.arms!r}")
        for arm, settings in self.arms.items():
            if not isinstance(settings, dict):
                raise ConfigError(f"arms.{arm} must be a mapping of dotted overrides, got {settings!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct integers, got {self.seeds}")
        if self.reward_range is not None and (
            len(self.reward_range) != 2 or not float(self.reward_range[0]) < float(self.reward_range[1])
        ):
            raise ConfigError(
                f"reward_range must be [low, high] with low < high (e.g. [0, 1]), got {self.reward_range}"
            )
        if self.parallel < 1:
            raise ConfigError(f"parallel must be >= 1, got {self.parallel}")
        self.output_dir = self.output_dir.format(name=self.name)
        if self.results_dir is None:
            self.results_dir = str(Path(self.output_dir) / "results")


@dataclass
class Cell:
    """One run of an experiment: an arm at a seed, with the train config it runs."""

    arm: str
    seed: int
    train: TrainConfig
    #: A copy of the finished cell's result beside the experiment's results (small, committed
    #: with them): a fresh checkout without the run folders skips the cells it holds.
    record: Path | None = None

    @property
    def out(self) -> Path:
        return Path(self.train.output_dir)

    @property
    def settings(self) -> dict[str, Any]:
        """Everything the run depends on (the train config but its folder and how it is resumed)."""
        data = json.loads(json.dumps(to_dict(self.train), default=str))
        for key in ("output_dir", "resume", "overwrite", "progress"):
            data.pop(key)
        return data

    def same_settings(self, other: dict[str, Any]) -> bool:
        """Whether a finished run with settings `other` is this cell's: every key both have is
        equal (a key only one has is a setting that a newer or older agentgym added)."""
        return _agree(self.settings, other)


def _agree(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_agree(a[k], b[k]) for k in a.keys() & b.keys())
    return a == b


def _set_dotted(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    if parts[0] in OWNED:
        raise ConfigError(
            f"{where}.{key}: the experiment sets {parts[0]} for every arm (seeds, budget, eval); "
            "change it in the experiment file's seeds, budget or eval"
        )
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}.{key}: {part!r} is not a section of the train config")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


class Experiment:
    """A loaded experiment: its config, where its files go, and its cells."""

    def __init__(self, cfg: ExperimentConfig, base: dict[str, Any], path: Path | None = None):
        self.cfg = cfg
        self.base = base
        self.path = path
        self.out = Path(cfg.output_dir)
        self.results = Path(cfg.results_dir)

    def train_data(self, arm: str, seed: int, output_dir: Path | None = None) -> dict[str, Any]:
        """The train config (as data) of one cell."""
        cfg = self.cfg
        data = copy.deepcopy(self.base)
        for key, value in cfg.overrides.items():
            _set_dotted(data, key, value, "overrides")
        for key, value in cfg.arms[arm].items():
            _set_dotted(data, key, value, f"arms.{arm}")
        ev = cfg.eval
        data.update(
            seed=seed,
            steps=STEP_CAP,
            output_dir=str(output_dir or self.out / arm / f"seed-{seed}"),
            compute={"unit": cfg.budget.unit, "total": cfg.budget.total, "eval_at": [f for f in ev.at if 0 < f < 1]},
            eval={
                "every": 0,
                "at_start": 0.0 in ev.at,
                "at_end": True,
                "horizons": list(ev.horizons),
                "split": ev.split,
                "num_tasks": ev.num_tasks,
                "samples_per_task": ev.samples_per_task,
                "temperature": ev.temperature,
            },
        )
        if cfg.threads is not None:
            data["threads"] = cfg.threads
        return data

    def cell(self, arm: str, seed: int, output_dir: Path | None = None) -> Cell:
        """The cell (arm, seed); one in another `output_dir` (a reproduction) keeps no record
        beside the results. An invalid arm is a `ConfigError` naming the arm and key."""
        try:
            train = from_dict(TrainConfig, self.train_data(arm, seed, output_dir))
        except ConfigError as exc:
            raise ConfigError(f"{self.where}arms.{arm} (on the base {self.cfg.base}): {exc}") from None
        record = None if output_dir is not None else self.results / "cells" / arm / f"seed-{seed}.json"
        return Cell(arm, seed, train, record)

    def cells(self) -> list[Cell]:
        """Every (arm, seed), seed-major: an interrupted experiment has all arms at the first seeds."""
        return [self.cell(arm, seed) for seed in self.cfg.seeds for arm in self.cfg.arms]

    @property
    def where(self) -> str:
        return f"{self.path}: " if self.path else ""


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    """Read an experiment file, its base config, and check every cell's train config (all
    errors are `ConfigError`s naming the file and key)."""
    path = Path(path)
    cfg = load_config(path, ExperimentConfig, overrides)
    base_path = (path.parent / cfg.base).resolve()
    if not base_path.exists():
        raise ConfigError(f"{path}: base: {cfg.base!r} does not exist (looked for {base_path})")
    load_config(base_path, TrainConfig)  # the base alone must be valid: its own errors name its file
    experiment = Experiment(cfg, yaml.safe_load(base_path.read_text()) or {}, path)
    experiment.cells()  # every arm's config is checked before anything runs
    return experiment
