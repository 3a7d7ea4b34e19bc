"""`agentgym envs`: list the registered environments with their task counts."""

from __future__ import annotations

import argparse
import inspect

from agentgym.registration import list_envs, plugin_errors


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("envs", help="list registered environments", description=__doc__)
    p.add_argument("--no-counts", action="store_true", help="do not build envs to count their tasks (faster)")
    return p


def task_counts(entry) -> str:
    try:
        cls = entry.load_class()
        needed = [
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != "self" and p.name not in entry.kwargs
        ]  # fmt: skip
        if needed:  # an env of the user's own (a site config, say): its tasks are the user's
            return "tasks from env.kwargs: " + ", ".join(needed)
        env = cls(**entry.kwargs)
        try:
            return " ".join(f"{s}={len(env.tasks(s))}" for s in env.splits)
        finally:
            env.close()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


def run(args: argparse.Namespace) -> int:
    entries = list_envs()
    width = max((len(e.id) for e in entries), default=10)
    for e in entries:
        counts = "" if args.no_counts else f"  [{task_counts(e)}]"
        print(f"{e.id:<{width}}  {e.description}{counts}")
    for name, err in plugin_errors.items():
        print(f"(plugin {name!r} failed to load: {err})")
    if not entries:
        print("no environments registered")
    return 0
