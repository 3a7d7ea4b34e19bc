"""What the config-driven commands (`eval`, `train`) share: reading CONFIG and overrides."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_args(args: argparse.Namespace, load: Callable[[str | None, list[str]], T]) -> T:
    """The config from `args.config` and `args.overrides` (a first argument with `=` is an
    override). An invalid one raises `ConfigError`, which names the key; the command
    prints it as one line."""
    overrides: list[Any] = list(args.overrides)
    path = args.config
    if path and "=" in path:  # only overrides were given
        overrides.insert(0, path)
        path = None
    return load(path, overrides)
