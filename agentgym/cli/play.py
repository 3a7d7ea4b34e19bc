"""`agentgym play ENV_ID`: play an episode yourself, as the agent.

Type the action text exactly as a model would (e.g. `<answer>42</answer>`), or use the
shortcuts:

    /answer TEXT                 -> <answer>TEXT</answer>
    /call TOOL key=value ...     -> <tool_call>{"name": TOOL, "arguments": {...}}</tool_call>
    /call TOOL {"key": "value"}  -> the same with JSON arguments
    /tools   /help   /quit
End a line with a backslash to continue the action on the next line.
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from agentgym.checks import check_env_id, check_env_kwargs, check_task_ids
from agentgym.config import ConfigError
from agentgym.registration import make
from agentgym.tools import Tool


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "play",
        help="play an episode in the terminal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("env_id", help="environment id, e.g. agentgym/GuessNumber-v0")
    p.add_argument("--task", help="task id (default: drawn from the split)")
    p.add_argument("--split", default="test", help="split to draw a task from (default: test)")
    p.add_argument("--max-turns", type=int, help="turn budget of the episode")
    p.add_argument("--seed", type=int, default=None, help="seed for drawing the task")
    p.add_argument(
        "--env-arg", action="append", default=[], metavar="KEY=VALUE", help="constructor argument (repeatable)"
    )
    return p


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def expand_shortcut(line: str) -> str | None:
    """Turn a `/answer` or `/call` shortcut into action text; None for other commands."""
    if line.startswith("/answer"):
        return f"<answer>{line[len('/answer') :].strip()}</answer>"
    if line.startswith("/call"):
        rest = line[len("/call") :].strip()
        name, _, argtext = rest.partition(" ")
        argtext = argtext.strip()
        if argtext.startswith("{"):
            args = _value(argtext)
        else:
            args = {}
            for part in shlex.split(argtext):
                key, sep, val = part.partition("=")
                if not sep:
                    raise ValueError(f"expected key=value, got {part!r}")
                args[key] = _value(val)
        return "<tool_call>" + json.dumps({"name": name, "arguments": args}, ensure_ascii=False) + "</tool_call>"
    return None


def _read_action(prompt: str) -> str | None:
    lines = []
    while True:
        try:
            line = input(prompt if not lines else "...> ")
        except EOFError:
            return None
        if line.endswith("\\"):
            lines.append(line[:-1])
            continue
        lines.append(line)
        return "\n".join(lines)


def _env_kwargs(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, val = pair.partition("=")
        if not sep:
            raise ConfigError(f"--env-arg expects KEY=VALUE, got {pair!r}")
        out[key] = _value(val)
    return out


def run(args: argparse.Namespace) -> int:
    kwargs = _env_kwargs(args.env_arg)
    env_id = check_env_id(args.env_id, "env_id")
    check_env_kwargs(env_id, kwargs, "--env-arg")
    env = make(env_id, **kwargs)
    base = env.unwrapped
    if args.split not in base.splits:
        raise ConfigError(f"--split: {env_id} has no split {args.split!r}; its splits: {', '.join(base.splits)}")
    if args.task:
        check_task_ids(env, [args.task])
    options: dict[str, Any] = {"split": args.split}
    if args.task:
        options["task_id"] = args.task
    if args.max_turns:
        options["max_turns"] = args.max_turns
    obs, info = env.reset(seed=args.seed, options=options)
    tools: dict[str, Tool] = getattr(base, "tools", {})
    print(f"== {args.env_id} | task {info['task_id']} | budget {info['max_turns']} turns")
    if tools:
        print("Tools:\n" + "\n".join("  " + t.signature_line() for t in tools.values()))
    if base.action_format:
        print(base.action_format)
    print("(type /help for shortcuts)\n")
    print(obs)
    total = 0.0
    while True:
        line = _read_action(f"\n[turn {info['turn'] + 1}/{info['max_turns']}] action> ")
        if line is None or line.strip() in ("/quit", "/exit"):
            print("bye")
            return 0
        stripped = line.strip()
        if stripped == "/help":
            print(__doc__)
            continue
        if stripped == "/tools":
            print("\n".join(t.signature_line() for t in tools.values()) or "this env has no tools")
            continue
        try:
            action = expand_shortcut(stripped) if stripped.startswith("/") else line
        except ValueError as exc:
            print(f"shortcut error: {exc}")
            continue
        if action is None:
            print(f"unknown command {stripped.split()[0]!r}; type /help")
            continue
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        print(obs)
        flag = "  (invalid action)" if info.get("invalid_action") else ""
        print(f"-- reward {reward:+.3g} (total {total:.3g}) | turns left {info['turns_left']}{flag}")
        if terminated or truncated:
            verdict = "SUCCESS" if info.get("success") else "FAILURE"
            why = "terminated" if terminated else "turn budget spent"
            print(f"== episode over ({why}): {verdict}, return {total:.3g}, {info['turn']} turns")
            env.close()
            return 0
