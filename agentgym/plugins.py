"""Named registries that installed packages extend through entry points.

Context strategies (`agentgym.rollout.context`) and training algorithms
(`agentgym.trainers`) are found by name, as environments are: a package lists a class
(registered under the entry point's name) or a function (called once, to register what
it likes) in the registry's entry-point group, and `pip install` is all a user does.

    # pyproject.toml of a third-party package
    [project.entry-points."agentgym.contexts"]
    drop_old_tools = "my_package.context:DropOldToolResults"

Example:
    >>> strategies = Registry("context strategy", "agentgym.contexts")
    >>> strategies.register("full", FullContext)
    >>> strategies.get("full")
    <class 'FullContext'>
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Things of one kind by name: built-ins register on import, plug-ins on first lookup.

    Args:
        kind: what is registered, for messages ("context strategy").
        group: the entry-point group installed packages extend ("agentgym.contexts").
    """

    def __init__(self, kind: str, group: str):
        self.kind, self.group = kind, group
        self._entries: dict[str, T] = {}
        self._plugins_loaded = False
        self.plugin_errors: dict[str, str] = {}

    def register(self, name: str, entry: T | str, *, override: bool = False) -> T | str:
        """Register `entry` under `name` (returns it, so this works as a decorator's body).
        `entry` may be "module:attr", imported on first lookup (built-ins that need heavy
        imports register so).

        Registering the same entry again is allowed; another entry under a taken name is an
        error unless `override` (a plug-in would silently shadow a built-in)."""
        old = self._entries.get(name)
        if old is not None and _qualname(old) != _qualname(entry) and not override:
            raise ValueError(
                f"{self.kind} {name!r} is already registered ({_qualname(old)}); registering {_qualname(entry)} "
                "under the same name would replace it: choose another name, or pass override=True"
            )
        self._entries[name] = entry
        return entry

    def load_plugins(self) -> None:
        """Register what every installed package lists in the entry-point group (once).
        A plug-in that fails to load is a warning, and does not stop the others."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
                if isinstance(obj, type):
                    self.register(ep.name, obj)
                elif callable(obj):
                    obj()
            except Exception as exc:
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"agentgym: could not load {self.kind} plug-in {ep.name!r} ({ep.value}): {exc}", stacklevel=2
                )

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def items(self) -> dict[str, T]:
        """Every entry by name (lazy ones imported)."""
        return {name: self.get(name) for name in self.names()}

    def get(self, name: str) -> T:
        """The entry registered as `name`; an unknown name is a `KeyError` naming the
        registered ones and the closest match."""
        self.load_plugins()
        if name not in self._entries:
            raise KeyError(self.unknown(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def unknown(self, name: str) -> str:
        """The message for a name nothing is registered under."""
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}: registered are {', '.join(names)}{hint}"

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._entries


def _qualname(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
