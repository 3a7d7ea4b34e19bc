"""The `agentgym` command.

agentgym envs                      list registered environments
agentgym play ENV_ID               play an episode in the terminal
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from agentgym.cli import envs, eval, play, train
from agentgym.errors import UserError

__all__ = ["build_parser", "main"]

#: Subcommand modules; each has `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = [envs, play, eval, train]


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


if __name__ == "__main__":
    sys.exit(main())
