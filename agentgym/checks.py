"""Checks of what a run needs, made before anything loads or is written: the env id, its
constructor arguments and split, task ids, and the output folder. Each failure is a
`ConfigError` naming the key and the fix, so `agentgym eval/train/play` print one line
instead of a traceback after minutes of model loading.

Example:
    >>> check_env(EnvConfig(id="agentgym/GuessNumber-61-v0"))
    ConfigError: env.id: unknown environment 'agentgym/GuessNumber-61-v0'; did you mean 'agentgym/GuessNumber-16-v0'?
"""

from __future__ import annotations

import difflib
import inspect
import os
import tempfile
from pathlib import Path
from typing import Any

import gymnasium

from agentgym.config import ConfigError
from agentgym.registration import EnvEntry, full_id, load_plugins

__all__ = ["check_env", "check_env_id", "check_env_kwargs", "check_output_dir", "check_task_ids", "env_class"]


def check_env_id(env_id: str, key: str = "env.id") -> str:
    """The full id of a registered env, or a `ConfigError` with the closest ids."""
    load_plugins()
    full = full_id(env_id)
    if full in gymnasium.registry:
        return full
    close = difflib.get_close_matches(full, list(gymnasium.registry), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; `agentgym envs` lists them"
    raise ConfigError(f"{key}: unknown environment {env_id!r}{hint}")


def env_class(env_id: str) -> type:
    """The class a registered env id builds."""
    spec = gymnasium.spec(full_id(env_id))
    return EnvEntry(spec.id, "", spec.entry_point, dict(spec.kwargs)).load_class()


def _accepted(cls: type) -> tuple[set[str], bool]:
    """The keyword arguments a class's constructor accepts, following `**kwargs` up the MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names, False
    return names, True


def check_env_kwargs(env_id: str, kwargs: dict[str, Any], key: str = "env.kwargs") -> None:
    """Every key of `kwargs` is a constructor argument of the env (`ConfigError` otherwise,
    with the closest name, and a hint when YAML read `{a:b}` as the key "a:b")."""
    try:
        cls = env_class(env_id)
    except Exception:  # not importable here (a plugin's optional dependency): the env itself will say
        return
    accepted, open_ended = _accepted(cls)
    if open_ended:
        return
    for name in kwargs:
        if name in accepted:
            continue
        name = str(name)
        if ":" in name:
            left, _, right = name.partition(":")
            raise ConfigError(
                f"{key}: unknown argument {name!r} of {cls.__name__}: YAML reads {{{name}}} as one key; "
                f"write {{{left}: {right}}}, with a space after the colon"
            )
        close = difflib.get_close_matches(name, sorted(accepted), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; its arguments: {', '.join(sorted(accepted))}"
        raise ConfigError(f"{key}: {cls.__name__} has no argument {name!r}{hint}")


def check_env(env: Any, prefix: str = "env") -> str:
    """Check an `EnvConfig` (id, kwargs, split) without building more than the env's task
    list; returns the full env id."""
    env_id = check_env_id(env.id, f"{prefix}.id")
    check_env_kwargs(env_id, env.kwargs, f"{prefix}.kwargs")
    probe = gymnasium.make(env_id, **env.kwargs)
    try:
        splits = list(probe.unwrapped.splits)
        if env.split not in splits:
            raise ConfigError(f"{prefix}.split: {env_id} has no split {env.split!r}; its splits: {', '.join(splits)}")
    finally:
        probe.close()
    return env_id


def check_task_ids(env: Any, task_ids: list[str], key: str = "--task") -> None:
    """Every id is a task of the (built) env, in any split."""
    for task_id in task_ids:
        try:
            env.unwrapped.get_task(task_id)
        except KeyError as exc:
            raise ConfigError(f"{key}: {exc.args[0]}") from None


def check_output_dir(path: str | Path, key: str = "output_dir") -> Path:
    """Create the folder if needed and prove it writable, before any work whose results
    would be lost at the end."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}: {str(path)!r} is a file, not a folder: choose another {key}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".agentgym-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot write into {str(path)!r} ({exc.strerror or exc}): choose another {key}"
        ) from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{key}: {str(path)!r} is not writable: choose another {key}")
    return path
