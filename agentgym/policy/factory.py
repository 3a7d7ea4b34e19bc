"""Building a policy from its config section."""

from __future__ import annotations

from agentgym.config import PolicyConfig
from agentgym.policy.base import Policy

__all__ = ["build_policy"]


def build_policy(cfg: PolicyConfig) -> Policy:
    """The policy a `PolicyConfig` describes."""
    if cfg.backend == "hf":
        from agentgym.policy.hf import HFPolicy

        return HFPolicy(cfg.model, dtype=cfg.dtype, device=cfg.device, batch_size=cfg.batch_size)
    if cfg.backend == "openai":
        from agentgym.policy.openai_api import OpenAIPolicy

        return OpenAIPolicy(cfg.model, base_url=cfg.base_url, api=cfg.api, tokenizer=cfg.tokenizer or None)
    if cfg.backend == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "policy.backend=vllm needs vLLM and a GPU: pip install vllm (or serve the model with "
                "`vllm serve MODEL` and use policy.backend=openai with policy.base_url)"
            ) from None
        raise RuntimeError(
            "the in-process vLLM backend is not built yet: serve the model and use policy.backend=openai"
        )
    raise ValueError(f"unknown policy backend {cfg.backend!r}")
