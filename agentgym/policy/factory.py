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

        return OpenAIPolicy(
            cfg.model, base_url=cfg.base_url, api=cfg.api, tokenizer=cfg.tokenizer or None, prompt=cfg.prompt
        )
    if cfg.backend == "vllm":
        from agentgym.policy.models import load_tokenizer
        from agentgym.policy.vllm_policy import VLLMPolicy

        return VLLMPolicy(
            cfg.model,
            load_tokenizer(cfg.model),
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            dtype="auto" if cfg.dtype == "auto" else cfg.dtype,
        )
    raise ValueError(f"unknown policy backend {cfg.backend!r}")
