"""agentgym trainers (GRPO, GiGPO, PPO, behaviour cloning), installed as `agentgym.trainers`.

Algorithms are found by name (`algo:` in the config) in `ALGORITHMS`, which installed
packages extend through the entry-point group `agentgym.algorithms`, as envs extend
`agentgym.envs`. An algorithm is a `Trainer` subclass (trainers/loop.py) that implements
`update(trajectories, horizon)`, with its settings as a dataclass `Config`: the config
section named after it.

    # pyproject.toml of a third-party package
    [project.entry-points."agentgym.algorithms"]
    my_algo = "my_package.algo:MyTrainer"

`build_trainer(cfg)` returns the trainer `cfg.algo` names; `trainer.train()` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentgym.plugins import Registry

if TYPE_CHECKING:
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.loop import Trainer

__all__ = ["ALGORITHMS", "build_trainer", "register_algorithm"]

#: Training algorithms by name; built-ins are imported on first use.
ALGORITHMS: Registry[type[Trainer]] = Registry("algorithm", "agentgym.algorithms")
ALGORITHMS.register("grpo", "agentgym.trainers.grpo:GRPOTrainer")
ALGORITHMS.register("gigpo", "agentgym.trainers.gigpo:GiGPOTrainer")
ALGORITHMS.register("ppo", "agentgym.trainers.ppo:PPOTrainer")


def register_algorithm(name: str, *, override: bool = False) -> Callable[[type[Trainer]], type[Trainer]]:
    """Class decorator: register a `Trainer` subclass as `algo: name`."""

    def add(cls: type[Trainer]) -> type[Trainer]:
        return ALGORITHMS.register(name, cls, override=override)

    return add


def build_trainer(cfg: TrainConfig, model: Any = None, tokenizer: Any = None) -> Trainer:
    """The trainer of `cfg.algo` (model and tokenizer: an already built model, for tests)."""
    return ALGORITHMS.get(cfg.algo)(cfg, model, tokenizer)
