"""Moved to `agentgym.rollout.context` (only the rollout uses it); this alias will be removed."""

import warnings

from agentgym.rollout.context import *  # noqa: F403
from agentgym.rollout.context import KeepLastKConfig, SummarizeConfig, __all__, make_context  # noqa: F401

warnings.warn("agentgym.context moved to agentgym.rollout.context", DeprecationWarning, stacklevel=2)


def make_context_strategy(context: str, *, keep_last_k: int = 5, summary_threshold: float = 0.95):
    """Deprecated: `agentgym.rollout.context.make_context(name, config)`."""
    configs = {"keep_last_k": KeepLastKConfig(k=keep_last_k), "summarize": SummarizeConfig(threshold=summary_threshold)}
    return make_context(context, configs.get(context))
