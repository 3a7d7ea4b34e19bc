"""Built-in agentgym environments, one folder each (env.py, tasks.py, README.md).

Installed as `agentgym.envs`. Each family's `register()` is called through the
`agentgym.envs` entry point, exactly like a third-party package's.
"""

import importlib

#: Environment families shipped with agentgym; each is a subpackage with a `register()`.
FAMILIES = ("guess_number", "kvsum", "web", "tools", "search", "mcp")


def register_builtin() -> None:
    """Register every built-in environment family."""
    for family in FAMILIES:
        importlib.import_module(f"agentgym.envs.{family}").register()
    # An OpenEnv server as an env (env.kwargs: {url: ..., tasks: ...}); needs agentgym[openenv].
    from agentgym.registration import register

    register("OpenEnv-v0", "agentgym.integrations.openenv:OpenEnvEnv")
