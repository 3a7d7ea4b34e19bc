"""The `agentgym` command.

agentgym envs                      list registered environments
agentgym play ENV_ID               play an episode in the terminal
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from agentgym.cli import envs, eval, experiment, play, serve, train, view
from agentgym.config import ConfigDeprecation
from agentgym.errors import UserError

__all__ = ["build_parser", "main"]

#: Subcommand modules; each has `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = [envs, play, eval, train, experiment, view, serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentgym",
        description="Environments, rollouts and trainers for interaction scaling of LLM agents.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also: AGENTGYM_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        p = module.add_parser(sub)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _config_deprecations_as_one_line()
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return run(args)
    except UserError as exc:  # a key, a model, a file, a folder: one line that says what to do
        if args.debug or os.environ.get("AGENTGYM_DEBUG", "") not in ("", "0"):
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _config_deprecations_as_one_line() -> None:
    """A deprecated config key is a `warning: ...` line, not a warning with a source line."""
    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ConfigDeprecation):
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


if __name__ == "__main__":
    sys.exit(main())
