"""Turning an agent's message into tool calls or a final answer.

The default format is the one most open chat models are trained on (Hermes/Qwen style):

    <tool_call>{"name": "guess", "arguments": {"n": 50}}</tool_call>
    <answer>42</answer>

A message may hold several tool calls, or one answer, plus any free text (reasoning)
around them. Parsing never raises: a malformed message gives a `ParsedAction` whose
`error` says what is wrong and how to write it correctly, ready to show the agent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ActionParser", "ParsedAction", "ToolCall", "clip", "parse_integer"]

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_INTEGER = re.compile(r"^\s*([-+]?)(\d+)\s*\.?\s*$")


def parse_integer(text: str, max_digits: int = 100) -> int | str:
    """The whole number in `text` (an optional sign, digits, an optional full stop), or a
    message saying what is wrong with it. Never raises, whatever the text: a number of
    more than `max_digits` digits is refused before Python's own int-string limit
    (`sys.get_int_max_str_digits()`) would raise.

    Example:
        >>> parse_integer(" 42. "), parse_integer("forty-two")[:20], parse_integer("9" * 500)[:30]
        (42, 'not a whole number: ', 'a number of 500 digits; at mo')
    """
    m = _INTEGER.match(text)
    if m is None:
        return f"not a whole number: {clip(text.strip(), 40)!r}"
    digits = m.group(2).lstrip("0") or "0"
    if len(digits) > max_digits:
        return f"a number of {len(digits)} digits; at most {max_digits} are allowed"
    return -int(digits) if m.group(1) == "-" else int(digits)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the agent asked for: the tool's name and its (not yet validated) arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParsedAction:
    """What a message asked for: tool `calls`, or an `answer`, or an `error` message."""

    calls: tuple[ToolCall, ...] = ()
    answer: str | None = None
    error: str | None = None


def clip(text: str, limit: int = 80) -> str:
    """`text` on one line (newlines shown as \\n) and at most `limit` characters, for
    quoting what an agent wrote in an error message."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class _Invalid:
    reason: str


def _loads(text: str) -> Any:
    """`json.loads`, or `_Invalid(reason)` for any text it refuses: malformed JSON, nesting
    deeper than the interpreter's recursion limit, or an integer longer than Python's
    int-string limit (a ValueError of its own)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return _Invalid(exc.msg)
    except RecursionError:
        return _Invalid("nested too deeply")
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        return _Invalid(f"a number is too long: {exc}")


class ActionParser:
    """Parses `<tool_call>{json}</tool_call>` (one or several) and `<answer>text</answer>`.

    Args:
        max_calls: the most tool calls one message may hold; more is an error.
        allow_answer: whether `<answer>` ends the episode (False for envs without answers).

    Example:
        >>> p = ActionParser()
        >>> p.parse('<tool_call>{"name": "guess", "arguments": {"n": 8}}</tool_call>').calls
        (ToolCall(name='guess', arguments={'n': 8}),)
        >>> p.parse("I think it is <answer>8</answer>").answer
        '8'
        >>> p.parse("<answer>8").error
        'the <answer> tag is not closed: write <answer>YOUR ANSWER</answer>'
    """

    call_open, call_close = "<tool_call>", "</tool_call>"
    answer_open, answer_close = "<answer>", "</answer>"

    def __init__(self, max_calls: int = 16, allow_answer: bool = True):
        self.max_calls = max_calls
        self.allow_answer = allow_answer
        self._call_re = re.compile(re.escape(self.call_open) + r"(.*?)" + re.escape(self.call_close), re.DOTALL)
        self._answer_re = re.compile(re.escape(self.answer_open) + r"(.*?)" + re.escape(self.answer_close), re.DOTALL)

    @property
    def format_help(self) -> str:
        """How to write an action, for system prompts and error messages."""
        lines = [
            "To call a tool, write "
            f'{self.call_open}{{"name": "TOOL_NAME", "arguments": {{"ARG": VALUE}}}}{self.call_close}'
            f" (several calls in one message are allowed, at most {self.max_calls})."
        ]
        if self.allow_answer:
            lines.append(f"To give your final answer, write {self.answer_open}YOUR ANSWER{self.answer_close}.")
        return "\n".join(lines)

    def parse(self, text: str) -> ParsedAction:
        """Parse one message. Never raises."""
        has_call = self.call_open in text or self.call_close in text
        has_answer = self.answer_open in text or self.answer_close in text
        if has_answer and self.allow_answer:
            if has_call:
                return ParsedAction(
                    error="the message has both a tool call and an answer: call tools first, "
                    "read their results, and give the answer in a later message"
                )
            return self._parse_answer(text)
        if has_call:
            return self._parse_calls(text)
        want = f"{self.call_open}...{self.call_close}" + (
            f" or {self.answer_open}...{self.answer_close}" if self.allow_answer else ""
        )
        seen = "an empty message" if not text.strip() else f"{clip(text.strip())!r}"
        return ParsedAction(error=f"no action found in {seen}: reply with {want}. {self.format_help}")

    def _parse_answer(self, text: str) -> ParsedAction:
        n_open, n_close = text.count(self.answer_open), text.count(self.answer_close)
        if n_open != n_close:
            if n_open > n_close:
                return ParsedAction(
                    error=f"the {self.answer_open} tag is not closed: write {self.answer_open}YOUR ANSWER{self.answer_close}"
                )
            return ParsedAction(
                error=f"found {self.answer_close} without a matching {self.answer_open}: "
                f"write {self.answer_open}YOUR ANSWER{self.answer_close}"
            )
        answers = self._answer_re.findall(text)
        if len(answers) != 1 or n_open != 1:
            return ParsedAction(error=f"give exactly one {self.answer_open}...{self.answer_close}, found {n_open}")
        return ParsedAction(answer=answers[0].strip())

    def _parse_calls(self, text: str) -> ParsedAction:
        n_open, n_close = text.count(self.call_open), text.count(self.call_close)
        example = f'{self.call_open}{{"name": "TOOL_NAME", "arguments": {{...}}}}{self.call_close}'
        if n_open != n_close:
            what = "is not closed" if n_open > n_close else "has a closing tag without an opening one"
            return ParsedAction(error=f"a {self.call_open} tag {what}: write {example}")
        bodies = self._call_re.findall(text)
        if len(bodies) != n_open:
            return ParsedAction(error=f"{self.call_open} tags must not be nested: write {example}")
        if len(bodies) > self.max_calls:
            return ParsedAction(error=f"{len(bodies)} tool calls in one message; at most {self.max_calls} are allowed")
        calls = []
        for i, body in enumerate(bodies, 1):
            where = f"tool call #{i}" if len(bodies) > 1 else "the tool call"
            call = self._parse_call(body, where, example)
            if isinstance(call, str):
                return ParsedAction(error=call)
            calls.append(call)
        return ParsedAction(calls=tuple(calls))

    @staticmethod
    def _parse_call(body: str, where: str, example: str) -> ToolCall | str:
        body = body.strip()
        fenced = _FENCE.match(body)
        if fenced:
            body = fenced.group(1)
        obj = _loads(body)
        if isinstance(obj, _Invalid):
            return f"the JSON of {where} is invalid ({obj.reason}) in {clip(body)!r}: write {example}"
        if not isinstance(obj, dict):
            return f'{where} must be a JSON object with "name" and "arguments", got {clip(body)!r}: write {example}'
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            return f'{where} has no "name" string: write {example}'
        # "parameters" is what Llama-style models emit; accept it as "arguments".
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):  # OpenAI-style: arguments as a JSON-encoded string
            args = _loads(args) if args.strip() else {}
            if isinstance(args, _Invalid):
                return f'the "arguments" string of {where} is not valid JSON ({args.reason}): write {example}'
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return f'"arguments" of {where} must be a JSON object, got {clip(json.dumps(args))}: write {example}'
        extra = set(obj) - {"name", "arguments", "parameters", "id", "type"}
        if extra:
            return f"{where} has unexpected keys {sorted(extra)}: write {example}"
        return ToolCall(name, args)
