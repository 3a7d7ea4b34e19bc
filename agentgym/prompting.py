"""Moved to `agentgym.rollout.prompting` (only the rollout uses it); this alias will be removed."""

import warnings

from agentgym.rollout.prompting import *  # noqa: F403
from agentgym.rollout.prompting import __all__  # noqa: F401

warnings.warn("agentgym.prompting moved to agentgym.rollout.prompting", DeprecationWarning, stacklevel=2)
