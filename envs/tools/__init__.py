"""Tool-calling environments: BFCL multi-turn (a published benchmark) and Retail (a SQLite world).

Two subpackages, each in the usual environment-folder shape (env, tasks, README):

- `agentgym.envs.tools.bfcl`: the BFCL v4 multi-turn tasks of the `bfcl-eval` package,
  run against that package's backends and scored by its checker;
- `agentgym.envs.tools.retail`: a tau-bench-style customer-service world on SQLite.
"""

from agentgym.envs.tools import bfcl, retail


def register() -> None:
    """Register every tool-calling environment."""
    bfcl.register()
    retail.register()
