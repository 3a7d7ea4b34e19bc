"""Moved to `agentgym.trainers.config` (training configs belong to the trainers); each
algorithm's settings moved to its module (`GRPOConfig` to agentgym.trainers.grpo,
`PPOConfig` to agentgym.trainers.ppo). This alias will be removed."""

import warnings
from typing import Any

from agentgym.trainers.config import *  # noqa: F403
from agentgym.trainers.config import __all__ as _moved

warnings.warn("agentgym.train_config moved to agentgym.trainers.config", DeprecationWarning, stacklevel=2)

__all__ = [*_moved, "GRPOConfig", "PPOConfig"]  # noqa: F405 (lazy: __getattr__)

_ALGORITHM_CONFIGS = {"GRPOConfig": "agentgym.trainers.grpo", "PPOConfig": "agentgym.trainers.ppo"}


def __getattr__(name: str) -> Any:
    if name in _ALGORITHM_CONFIGS:  # lazily: the algorithms import torch
        import importlib

        return getattr(importlib.import_module(_ALGORITHM_CONFIGS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
