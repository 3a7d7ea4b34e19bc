"""What the config-driven commands (`eval`, `train`) share: reading CONFIG and overrides."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from agentgym.config import ConfigError

T = TypeVar("T")


def config_from_args(args: argparse.Namespace, load: Callable[[str | None, list[str]], T]) -> T | None:
    """The config from `args.config` and `args.overrides`; None (after printing the error,
    which names the key) when it is invalid. A first argument with `=` is an override."""
    overrides: list[Any] = list(args.overrides)
    path = args.config
    if path and "=" in path:  # only overrides were given
        overrides.insert(0, path)
        path = None
    try:
        return load(path, overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return None
