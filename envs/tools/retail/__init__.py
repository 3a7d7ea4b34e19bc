"""Retail: a tau-bench-style customer-service world on SQLite."""

from agentgym.registration import register as _register


def register() -> None:
    _register("Retail-v0", "agentgym.envs.tools.retail.env:RetailEnv")
