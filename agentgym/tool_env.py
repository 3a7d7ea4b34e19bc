"""`ToolEnv`: a `TextEnv` whose actions are tool calls and a final answer.

Subclasses mark tool methods with `@tool` and implement `on_answer`; parsing, schema
validation, running the calls and reporting errors back to the agent are done here.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from agentgym.env import Outcome, TextEnv
from agentgym.parsing import ActionParser, ToolCall
from agentgym.tools import Tool, ToolArgumentError, collect_tools, validate_arguments

__all__ = ["ToolEnv", "ToolError"]


class ToolError(Exception):
    """Raise from a tool to report a failure to the agent (e.g. "order is not pending").

    The message becomes the tool's response; the episode goes on. Any other exception
    from a tool is a bug in the environment and propagates (the rollout aborts the episode).
    """


class ToolEnv(TextEnv):
    """A `TextEnv` driven by tool calls (`@tool` methods) and a final `<answer>`.

    Subclasses implement `make_tasks`, `setup` and `on_answer`, and mark tools with
    `@tool`. A tool returns a string (or any JSON-serialisable value) that the agent sees,
    or an `Outcome` to end the episode or give a reward.
    """

    #: Parser of the agent's messages; override with a subclass of `ActionParser` to change the format.
    parser: ClassVar[ActionParser] = ActionParser()
    _tools: ClassVar[dict[str, Tool]] = {}
    _schemas: ClassVar[list[dict[str, Any]]] = []

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        cls._tools = collect_tools(cls)
        cls._schemas = [t.schema for t in cls._tools.values()]

    @property
    def tools(self) -> dict[str, Tool]:
        """The env's tools, by name."""
        return self._tools

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        return self._schemas

    @property
    def action_format(self) -> str:
        if not self._tools:
            return f"Reply with {self.parser.answer_open}YOUR ANSWER{self.parser.answer_close}."
        return self.parser.format_help

    def restrict_tools(self, names: tuple[str, ...] | list[str]) -> None:
        """Offer only these tools in this instance (e.g. a variant that hides one)."""
        unknown = set(names) - set(self._tools)
        if unknown:
            raise ValueError(f"unknown tools {sorted(unknown)}; this env has {list(self._tools)}")
        self._tools = {n: t for n, t in self._tools.items() if n in names}
        self._schemas = [t.schema for t in self._tools.values()]

    def is_final_answer(self, action: str) -> bool:
        return self.parser.parse(action).answer is not None

    def on_answer(self, answer: str) -> Outcome:
        """Judge the final answer (already stripped of its tags)."""
        raise NotImplementedError

    def format_response(self, name: str, content: str) -> str:
        """How one tool result is shown to the agent."""
        return f'<tool_response name="{name}">\n{content}\n</tool_response>'

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self.tool_counts: dict[str, int] = {}
        return super().reset(seed=seed, options=options)

    def _info(self, invalid: bool, success: bool) -> dict[str, Any]:
        return {**super()._info(invalid, success), "tool_counts": dict(getattr(self, "tool_counts", {}))}

    def transition(self, action: str) -> Outcome:
        parsed = self.parser.parse(action)
        if parsed.error is not None:
            return Outcome(f"Invalid action: {parsed.error}", invalid=True)
        if parsed.answer is not None:
            return self.on_answer(parsed.answer)
        return self.run_calls(parsed.calls)

    def run_calls(self, calls: tuple[ToolCall, ...]) -> Outcome:
        """Validate every call first (so a bad one runs none), then run them in order."""
        tools = self._tools
        bound = []
        for call in calls:
            tool_ = tools.get(call.name)
            if tool_ is None:
                names = ", ".join(tools) or "none"
                return Outcome(f"Invalid action: unknown tool {call.name!r}. Available tools: {names}.", invalid=True)
            try:
                bound.append((tool_, validate_arguments(tool_, call.arguments)))
            except ToolArgumentError as exc:
                return Outcome(
                    f"Invalid action: tool {call.name!r}: {exc}. Usage: {tool_.signature_line()}", invalid=True
                )
        responses: list[str] = []
        reward, errors = 0.0, 0
        for tool_, args in bound:
            self.tool_calls += 1
            self.tool_counts[tool_.name] = self.tool_counts.get(tool_.name, 0) + 1
            try:
                result = tool_.fn(self, **args)
            except ToolError as exc:
                errors += 1
                result = f"Error: {exc}"
            if isinstance(result, Outcome):
                reward += result.reward
                responses.append(self.format_response(tool_.name, result.observation))
                if result.terminated:
                    info = {**(result.info or {}), "tool_errors": errors}
                    return Outcome("\n".join(responses), reward, True, result.success, result.invalid, info)
                continue
            if not isinstance(result, str):
                result = json.dumps(result, ensure_ascii=False, default=str)
            responses.append(self.format_response(tool_.name, result))
        return Outcome("\n".join(responses), reward, info={"tool_errors": errors} if errors else None)
