"""agentgym trainers (GRPO, PPO, behaviour cloning), installed as `agentgym.trainers`.

`build_trainer(cfg)` returns the trainer `cfg.algo` names; `trainer.train()` runs it.
"""

from __future__ import annotations

from typing import Any

from agentgym.train_config import TrainConfig

__all__ = ["build_trainer"]


def build_trainer(cfg: TrainConfig, model: Any = None, tokenizer: Any = None) -> Any:
    """The trainer of `cfg.algo` (model and tokenizer: an already built model, for tests)."""
    if cfg.algo == "grpo":
        from agentgym.trainers.grpo import GRPOTrainer

        return GRPOTrainer(cfg, model, tokenizer)
    if cfg.algo == "ppo":
        from agentgym.trainers.ppo import PPOTrainer

        return PPOTrainer(cfg, model, tokenizer)
    raise ValueError(f"unknown algo {cfg.algo!r}: grpo or ppo")
