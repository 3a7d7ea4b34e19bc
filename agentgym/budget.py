"""Moved to `agentgym.rollout.budget` (only the rollout uses it); this alias will be removed."""

import warnings

from agentgym.rollout.budget import *  # noqa: F403
from agentgym.rollout.budget import __all__  # noqa: F401

warnings.warn("agentgym.budget moved to agentgym.rollout.budget", DeprecationWarning, stacklevel=2)
