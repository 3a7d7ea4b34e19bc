"""Registering environments under the `agentgym/` namespace of gymnasium's registry.

Built-in environments and third-party packages register the same way: a package lists
a function (or a module) in the entry-point group `agentgym.envs`, and agentgym calls
it on import. `pip install their-env` is all a user does.

    # pyproject.toml of a third-party package
    [project.entry-points."agentgym.envs"]
    my_envs = "my_package:register_envs"
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import gymnasium

__all__ = ["NAMESPACE", "EnvEntry", "env_tasks", "list_envs", "load_plugins", "make", "register"]

NAMESPACE = "agentgym"
ENTRY_POINT_GROUP = "agentgym.envs"

_descriptions: dict[str, str] = {}
_plugins_loaded = False
plugin_errors: dict[str, str] = {}


def full_id(env_id: str) -> str:
    """`"KVSum-v0"` -> `"agentgym/KVSum-v0"`; ids that already have a namespace are kept."""
    return env_id if "/" in env_id else f"{NAMESPACE}/{env_id}"


def register(
    id: str,
    entry_point: str | Callable[..., gymnasium.Env],
    *,
    description: str | None = None,
    override: bool = False,
    **kwargs: Any,
) -> str:
    """Register an environment so that `gymnasium.make("agentgym/<id>")` builds it.

    Args:
        id: the env id, e.g. "KVSum-v0" (the `agentgym/` namespace is added).
        entry_point: the env class, or "module.path:ClassName" (imported only when made).
        description: one line for `agentgym envs`; default: the class docstring's first line.
        override: replace an env registered under this id by another entry point (without
            it that is an error: a plugin would silently shadow a built-in). Registering
            the same entry point and arguments again (a reloaded plugin, a re-run script)
            is always allowed.
        **kwargs: default constructor arguments (callers of `make` can override them).

    Returns:
        The full id, e.g. "agentgym/KVSum-v0".
    """
    env_id = full_id(id)
    if not env_id.startswith(f"{NAMESPACE}/"):
        raise ValueError(f"agentgym env ids live in the {NAMESPACE!r} namespace, got {id!r}")
    old = gymnasium.registry.get(env_id)
    if old is not None:
        same = _entry_name(old.entry_point) == _entry_name(entry_point) and dict(old.kwargs) == kwargs
        if not (same or override):
            raise ValueError(
                f"{env_id} is already registered ({_entry_name(old.entry_point)}); registering "
                f"{_entry_name(entry_point)} under the same id would replace it: choose another id, "
                "or pass override=True to replace it on purpose"
            )
        del gymnasium.registry[env_id]
    gymnasium.register(id=env_id, entry_point=entry_point, kwargs=kwargs)
    if description:
        _descriptions[env_id] = description
    return env_id


def _entry_name(entry_point: Any) -> str:
    """ "module:QualName" of an entry point (a class or function, or such a string)."""
    if isinstance(entry_point, str):
        return entry_point
    return f"{getattr(entry_point, '__module__', '?')}:{getattr(entry_point, '__qualname__', repr(entry_point))}"


def load_plugins() -> None:
    """Register the environments of every installed package in the `agentgym.envs` group.

    A plugin that fails to load is reported with a warning (and in `agentgym envs`);
    it does not stop the others.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, ModuleType):
                obj()
        except Exception as exc:
            plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"agentgym: could not load environments from plugin {ep.name!r} ({ep.value}): {exc}",
                stacklevel=2,
            )


def make(id: str, **kwargs: Any) -> gymnasium.Env:
    """`gymnasium.make` that accepts ids without the `agentgym/` prefix."""
    load_plugins()
    return gymnasium.make(full_id(id), **kwargs)


def env_tasks(env: Any) -> list[Any]:
    """The tasks a config's env section (`EnvConfig`) names: the first `num_tasks` of its
    split, from an env built with its kwargs (training, evaluation and the warm start
    draw from the same list)."""
    probe = make(env.id, **env.kwargs)
    try:
        tasks = list(probe.unwrapped.tasks(env.split))
    finally:
        probe.close()
    return tasks if env.num_tasks is None else tasks[: env.num_tasks]


@dataclass(frozen=True)
class EnvEntry:
    """A registered agentgym environment."""

    id: str
    description: str
    entry_point: Any
    kwargs: dict[str, Any]

    def load_class(self) -> type:
        ep = self.entry_point
        if isinstance(ep, str):
            module, _, name = ep.partition(":")
            return getattr(importlib.import_module(module), name)
        return ep


def _description(env_id: str, entry_point: Any) -> str:
    if env_id in _descriptions:
        return _descriptions[env_id]
    try:
        cls = EnvEntry(env_id, "", entry_point, {}).load_class()
    except Exception as exc:
        return f"(cannot import: {exc})"
    text = getattr(cls, "description", "") or (cls.__doc__ or "").strip()
    return text.splitlines()[0] if text else ""


def list_envs() -> list[EnvEntry]:
    """Every env registered under `agentgym/`, sorted by id."""
    load_plugins()
    out = []
    for env_id, spec in sorted(gymnasium.registry.items()):
        if env_id.startswith(f"{NAMESPACE}/"):
            out.append(EnvEntry(env_id, _description(env_id, spec.entry_point), spec.entry_point, dict(spec.kwargs)))
    return out
