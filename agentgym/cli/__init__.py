"""The `agentgym` command.

agentgym envs                      list registered environments
agentgym play ENV_ID               play an episode in the terminal
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from agentgym.cli import envs, eval, play, train

__all__ = ["build_parser", "main"]

#: Subcommand modules; each has `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = [envs, play, eval, train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentgym",
        description="Environments, rollouts and trainers for interaction scaling of LLM agents.",
    )
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
    from agentgym.policy.models import ModelNotFoundError

    try:
        return run(args)
    except ModelNotFoundError as exc:  # a model or tokenizer name that does not load: say which, and how
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
