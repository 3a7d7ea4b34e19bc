"""MCPEnv: a tool environment whose tools are an MCP server's, through the official `mcp` SDK
over stdio.

The tools the agent sees are the server's (`list_tools`: names, descriptions and input
schemas); a tool call is a `call_tool` to the server and its result the observation; a
result the server marks as an error is a tool error the agent reads (its own failure). A
server that dies, hangs past `step_timeout_s` or drops the connection ends the episode
aborted (an env failure). A server is started per episode (a stateful server's state never
leaks between episodes), or once per env when it is declared `stateless`.

Tasks and checks come from the user: a JSONL file (or `module:function`) of
{"id", "instruction", "answer" | "answers" | "check": "module:function", "split", "min_turns"};
a check function gets (answer, task, env) and returns True/False or (ok, why). Subclasses
(`GitMCPEnv`) set up per-episode state (`prepare`) and check it.

    agentgym eval ... env.id=agentgym/MCP-v0 'env.kwargs={command: [python, my_server.py], tasks: tasks.jsonl}'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgym.env import Outcome, Task, TextEnv
from agentgym.parsing import ActionParser, ToolCall

__all__ = ["MCPConnection", "MCPEnv", "ServerFailed"]


class ServerFailed(RuntimeError):
    """The MCP server died, hung or broke the connection: the episode aborts."""


class MCPConnection:
    """One MCP server process and its client session, driven from sync code: the session
    lives in an event loop of its own thread (the SDK is async and its contexts must be
    entered and left in one task)."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None,
                 start_timeout_s: float = 30.0):  # fmt: skip
        from mcp import StdioServerParameters

        self.params = StdioServerParameters(command=command[0], args=list(command[1:]), env=env, cwd=cwd)
        # The server's stderr goes to a file of its own: its tracebacks are not the agent's
        # business, and the end of it explains a server that fails (`ServerFailed`).
        self.errlog = tempfile.NamedTemporaryFile("w+", prefix="agentgym-mcp-", suffix=".log")  # noqa: SIM115
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="mcp-client")
        self.thread.start()
        self._ready: asyncio.Future | None = None
        self._stop: asyncio.Event | None = None
        self.session: Any = None
        self.tools: list[Any] = []
        self._runner = asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        try:
            asyncio.run_coroutine_threadsafe(self._wait_ready(), self.loop).result(start_timeout_s)
        except Exception as exc:
            self.close()
            raise ServerFailed(
                f"the MCP server {' '.join(command)!r} did not start: {_describe(exc)}; its stderr ends: {self.stderr_tail()}"
            ) from None

    async def _run(self) -> None:
        from mcp import ClientSession
        from mcp.client.stdio import stdio_client

        self._ready = self.loop.create_future() if self._ready is None else self._ready
        self._stop = asyncio.Event()
        try:
            async with (
                stdio_client(self.params, errlog=self.errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                self.tools = (await session.list_tools()).tools
                self.session = session
                self._ready.set_result(True)
                await self._stop.wait()
        except BaseException as exc:  # the server failed to start, or died: callers see it
            if not self._ready.done():
                self._ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            self.session = None

    async def _wait_ready(self) -> None:
        while self._ready is None:
            await asyncio.sleep(0.005)
        await self._ready

    def call(self, name: str, arguments: dict[str, Any], timeout_s: float) -> tuple[bool, str]:
        """(is_error, text) of one tool call; `ServerFailed` when the server cannot answer."""
        if self.session is None or self._runner.done():
            raise ServerFailed("the MCP server is gone")
        future = asyncio.run_coroutine_threadsafe(self.session.call_tool(name, arguments), self.loop)
        try:
            result = future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise ServerFailed(f"tool {name!r} did not answer within {timeout_s:g} s (step_timeout_s)") from None
        except Exception as exc:
            raise ServerFailed(
                f"tool {name!r}: the MCP server failed: {_describe(exc)}; its stderr ends: {self.stderr_tail()}"
            ) from None
        parts = []
        for item in result.content:
            text = getattr(item, "text", None)
            parts.append(text if text is not None else json.dumps(item.model_dump(mode="json"), default=str))
        if getattr(result, "structured_content", None) and not parts:
            parts.append(json.dumps(result.structured_content, default=str))
        return bool(result.is_error), "\n".join(parts)

    def stderr_tail(self, chars: int = 300) -> str:
        try:
            self.errlog.flush()
            text = Path(self.errlog.name).read_text(errors="replace")
        except OSError:
            return "(unreadable)"
        return " ".join(text[-chars:].split()) or "(nothing)"

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            with contextlib.suppress(Exception):  # closing: a server that already died is fine
                self._runner.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.session = None
        self.errlog.close()


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:400]


def _load_tasks(source: str | Path | list[dict[str, Any]], base: Path | None = None) -> list[dict[str, Any]]:
    if isinstance(source, list):
        return source
    text = str(source)
    if ":" in text and not Path(text).exists() and "/" not in text:
        import importlib

        module, _, name = text.partition(":")
        return list(getattr(importlib.import_module(module), name)())
    path = Path(text) if base is None or Path(text).is_absolute() else base / text
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return rows


def _split_of(task_id: str) -> str:
    import hashlib

    return "test" if int(hashlib.sha256(task_id.encode()).hexdigest(), 16) % 5 == 0 else "train"


def _norm(text: str) -> str:
    return " ".join(str(text).lower().replace(".", " ").split())


class MCPEnv(TextEnv):
    """An MCP server's tools as a tool environment (see the module docstring).

    Args:
        command: the server's command line (a list, or a string split like a shell).
        tasks: a JSONL file, `module:function`, or a list of task dicts.
        stateless: the server keeps no state between calls: one server serves every
            episode of this env (default: a server per episode).
        step_timeout_s: the longest a tool call may take before the episode aborts.
        server_env: environment variables of the server process (added to the defaults).
        max_calls: the most tool calls one reply may hold.
        **kwargs: `TextEnv` arguments (max_turns, split, ...).
    """

    default_max_turns = 20

    def __init__(self, command: Sequence[str] | str | None = None, tasks: Any = None, stateless: bool = False,
                 step_timeout_s: float = 30.0, server_env: dict[str, str] | None = None, max_calls: int = 16,
                 **kwargs: Any):  # fmt: skip
        import shlex

        try:
            import mcp  # noqa: F401
        except ImportError:
            raise ImportError("the MCP envs need the mcp SDK: pip install 'agentgym[mcp]'") from None
        if command is not None:
            self.command = shlex.split(command) if isinstance(command, str) else list(command)
        if not getattr(self, "command", None):
            raise ValueError("MCPEnv needs the server's command, e.g. command=['python', 'server.py']")
        self.stateless = stateless
        self.step_timeout_s = step_timeout_s
        self.server_env = server_env
        self.parser = ActionParser(max_calls=max_calls)
        self._rows = self.task_rows() if tasks is None else _load_tasks(tasks)
        super().__init__(**kwargs)
        self.connection: MCPConnection | None = None
        self._schemas: list[dict[str, Any]] = []

    # ------------------------------------------------------------ tasks

    def task_rows(self) -> list[dict[str, Any]]:
        """The tasks as dicts, when the env defines its own (subclasses); else `tasks=`."""
        raise ValueError("MCPEnv needs tasks: a JSONL file, module:function, or a list of task dicts")

    def make_tasks(self, split: str) -> list[Task]:
        out = []
        for row in self._rows:
            if row.get("split", _split_of(row["id"])) != split:
                continue
            meta = {k: v for k, v in row.items() if k not in ("id", "instruction", "split", "min_turns")}
            out.append(
                Task(row["id"], row["instruction"], split, min_turns=int(row.get("min_turns", 1)), metadata=meta)
            )
        return out

    # ------------------------------------------------------------ the server

    def server_command(self, task: Task) -> list[str]:
        """The command that starts the server for `task` (subclasses add per-episode paths)."""
        return list(self.command)

    def prepare(self, task: Task) -> str:
        """Set up the episode's state before the server starts; returns a note for the agent."""
        return ""

    def _connect(self, task: Task) -> MCPConnection:
        if self.connection is not None and not self.stateless:
            self.connection.close()
            self.connection = None
        if self.connection is None:
            env = {**os.environ, **self.server_env} if self.server_env else None
            self.connection = MCPConnection(self.server_command(task), env=env)
            self._schemas = [
                {"type": "function", "function": {"name": t.name, "description": t.description or t.name,
                                                  "parameters": t.input_schema or {"type": "object"}}}
                for t in self.connection.tools
            ]  # fmt: skip
        return self.connection

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        return self._schemas

    @property
    def action_format(self) -> str:
        return self.parser.format_help

    def is_final_answer(self, action: str) -> bool:
        return self.parser.parse(action).answer is not None

    # ------------------------------------------------------------ episode

    def setup(self, task: Task) -> str:
        note = self.prepare(task)
        self._connect(task)
        return f"{task.instruction}\n{note}".strip()

    def transition(self, action: str) -> Outcome:
        parsed = self.parser.parse(action)
        if parsed.error is not None:
            return Outcome(f"Invalid action: {parsed.error}", invalid=True)
        if parsed.answer is not None:
            ok, why = self.check(self.current_task, parsed.answer)
            verdict = "The task is solved." if ok else f"The task is not solved: {why}."
            return Outcome(f"Answer received. {verdict}", reward=float(ok), terminated=True, success=ok,
                           info={"check": why})  # fmt: skip
        return self._run_calls(parsed.calls)

    def _run_calls(self, calls: tuple[ToolCall, ...]) -> Outcome:
        names = {s["function"]["name"] for s in self._schemas}
        for call in calls:
            if call.name not in names:
                return Outcome(f"Invalid action: unknown tool {call.name!r}. Available tools: {', '.join(sorted(names))}.",
                               invalid=True)  # fmt: skip
        responses, errors = [], 0
        for call in calls:
            self.tool_calls += 1
            is_error, text = self.connection.call(call.name, dict(call.arguments), self.step_timeout_s)
            if is_error:
                errors += 1
                text = f"Error: {text}"
            responses.append(f'<tool_response name="{call.name}">\n{text}\n</tool_response>')
        return Outcome("\n".join(responses), info={"tool_errors": errors} if errors else None)

    def check(self, task: Task, answer: str) -> tuple[bool, str]:
        """Judge the final answer: the task's `answer`/`answers` (normalised), or its
        `check` function (answer, task, env) -> bool or (ok, why)."""
        meta = task.metadata
        if "check" in meta:
            import importlib

            module, _, name = str(meta["check"]).partition(":")
            result = getattr(importlib.import_module(module), name)(answer=answer, task=task, env=self)
            ok, why = result if isinstance(result, tuple) else (bool(result), "")
            return bool(ok), why or ("correct" if ok else "the check failed")
        wanted = [meta["answer"]] if "answer" in meta else list(meta.get("answers", []))
        ok = _norm(answer) in {_norm(w) for w in wanted}
        return ok, "correct" if ok else f"the answer {answer[:80]!r} is not the expected one"

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        super().close()
