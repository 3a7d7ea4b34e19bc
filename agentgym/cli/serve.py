"""`agentgym serve ENV_ID`: serve a registered env over OpenEnv (HTTP + WebSocket sessions),
with OpenEnv's own server, so OpenEnv clients and TRL's OpenEnv integration can use it.

    agentgym serve agentgym/GuessNumber-16-v0                   # a free port on 127.0.0.1, printed
    agentgym serve agentgym/KVSum-v0 --port 8000 --max-sessions 16
    agentgym serve agentgym/Search-v0 'env.kwargs={num_hops: 2}'

Each WebSocket client gets an env of its own (sessions never share state). Actions are
{"text": "<the agent's reply>"}; observations carry the text, the task, the turn, success
and the env's info; `reset` takes agentgym's task_id and split besides seed. Needs
`pip install 'agentgym[openenv]'`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging

from agentgym.config import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help="serve an env over OpenEnv (for OpenEnv clients and TRL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("env_id", help="a registered env id (agentgym envs lists them)")
    p.add_argument("overrides", nargs="*", help="env.kwargs={...} for the env's constructor")
    p.add_argument("--port", type=int, default=0, help="the port (default: a free one, printed)")
    p.add_argument("--host", default="127.0.0.1", help="the interface (default 127.0.0.1: this machine only)")
    p.add_argument("--max-sessions", type=int, default=8, help="sessions (clients) at once (default 8)")
    return p


def run(args: argparse.Namespace) -> int:
    import yaml

    from agentgym.integrations.openenv import serve

    kwargs = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if key != "env.kwargs" or not sep:
            raise ConfigError(f"{item!r}: agentgym serve takes env.kwargs={{...}} only")
        kwargs = yaml.safe_load(value)
        if not isinstance(kwargs, dict):
            raise ConfigError(f"env.kwargs must be a mapping, like env.kwargs={{n: 64}}, got {value!r}")
    if args.max_sessions < 1:
        raise ConfigError(f"--max-sessions must be >= 1, got {args.max_sessions}")
    logging.getLogger("uvicorn.error").addFilter(_QuietDisconnects())
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the server
        serve(args.env_id, args.host, args.port, args.max_sessions, kwargs)
    return 0


class _QuietDisconnects(logging.Filter):
    """OpenEnv's server logs a traceback when a client closes its session first; that is a
    normal end of a session, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ not in ("WebSocketDisconnect", "ClientDisconnected")
