"""Policies: the Policy interface and its backends.

`HFPolicy` (transformers, the default), `OpenAIPolicy` (any OpenAI-compatible server),
`ScriptedPolicy` (tests and baselines). Backends import their heavy dependencies lazily.
"""

from agentgym.policy.base import Generation, Policy, SamplingParams
from agentgym.policy.models import DEFAULT_MODEL, ModelNotFoundError, load_model, load_tokenizer, resolve_model
from agentgym.policy.scripted import ScriptedPolicy

__all__ = [
    "DEFAULT_MODEL",
    "Generation",
    "HFPolicy",
    "ModelNotFoundError",
    "OpenAIPolicy",
    "Policy",
    "SamplingParams",
    "ScriptedPolicy",
    "load_model",
    "load_tokenizer",
    "resolve_model",
]


def __getattr__(name: str):
    if name == "HFPolicy":
        from agentgym.policy.hf import HFPolicy

        return HFPolicy
    if name == "OpenAIPolicy":
        from agentgym.policy.openai_api import OpenAIPolicy

        return OpenAIPolicy
    raise AttributeError(name)
