"""Moved to `agentgym.trainers.curriculum` (the curriculum belongs to the trainers); this
alias will be removed."""

import warnings

from agentgym.trainers.curriculum import *  # noqa: F403
from agentgym.trainers.curriculum import __all__  # noqa: F401

warnings.warn("agentgym.curriculum moved to agentgym.trainers.curriculum", DeprecationWarning, stacklevel=2)
