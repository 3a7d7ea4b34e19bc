"""Tools: typed methods marked `@tool`, their JSON schemas, and argument validation.

A tool's schema is built from its signature and its Google-style docstring, in the
OpenAI function-calling format that chat templates with tool support expect (the same
shape as `transformers.utils.get_json_schema`). Arguments are validated against the
schema before the call by a small validator for the subset of JSON Schema that Python
type hints produce; it is ~20x faster than `jsonschema` and its messages name the
argument and say what was expected, which is what an agent needs to correct itself.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

__all__ = ["Tool", "ToolArgumentError", "function_schema", "tool", "validate_arguments"]


class ToolArgumentError(ValueError):
    """Raised by `validate_arguments` when arguments do not match a tool's schema."""


def tool(fn: Callable | None = None, *, name: str | None = None) -> Any:
    """Mark a method of a `ToolEnv` as a tool the agent may call.

    The type hints give the argument types; the docstring's first paragraph is the
    tool's description and its `Args:` section describes each argument.

    Example:
        >>> class Calculator(ToolEnv):
        ...     @tool
        ...     def add(self, a: int, b: int) -> str:
        ...         '''Add two integers.
        ...
        ...         Args:
        ...             a: The first integer.
        ...             b: The second integer.
        ...         '''
        ...         return str(a + b)
    """

    def mark(f: Callable) -> Callable:
        f.__agentgym_tool__ = name or f.__name__  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True)
class Tool:
    """A tool bound to its schema: `name`, the JSON `schema`, and the unbound function."""

    name: str
    schema: dict[str, Any]
    fn: Callable[..., Any]

    @property
    def parameters(self) -> dict[str, Any]:
        return self.schema["function"]["parameters"]

    def signature_line(self) -> str:
        """A one-line human-readable signature: `guess(n: integer) - Guess the number.`"""
        props = self.parameters["properties"]
        required = set(self.parameters.get("required", ()))
        args = ", ".join(f"{k}: {_type_label(v)}" + ("" if k in required else " = optional") for k, v in props.items())
        return f"{self.name}({args}) - {self.schema['function']['description']}"


def _type_label(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    t = prop.get("type", "any")
    if isinstance(t, list):
        return " | ".join(t)
    if t == "array" and "items" in prop:
        return f"array of {_type_label(prop['items'])}"
    return t


# --------------------------------------------------------------------------- schemas

_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$", re.MULTILINE)
_SECTION_HEADER = re.compile(r"^\s*(Returns|Return|Raises|Yields|Example|Examples|Note|Notes)\s*:\s*$", re.MULTILINE)
_ARG_LINE = re.compile(r"^(\s*)(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {arg: description})."""
    doc = inspect.cleandoc(doc or "")
    m = _ARGS_HEADER.search(doc)
    head = doc[: m.start()] if m else doc
    end = _SECTION_HEADER.search(head)
    head = head[: end.start()] if end else head
    description = " ".join(head.strip().split("\n\n")[0].split())
    args: dict[str, str] = {}
    if m:
        body = doc[m.end() :]
        end = _SECTION_HEADER.search(body)
        body = body[: end.start()] if end else body
        indent, current = None, None
        for line in body.splitlines():
            if not line.strip():
                continue
            am = _ARG_LINE.match(line)
            if am and (indent is None or len(am.group(1)) <= indent):
                indent = len(am.group(1))
                current = am.group(2).lstrip("*")
                args[current] = am.group(4).strip()
            elif current is not None:
                args[current] = (args[current] + " " + line.strip()).strip()
    return description, args


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    """JSON schema of a Python type hint."""
    origin = typing.get_origin(hint)
    targs = typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is type(None) or hint is None:
        return {"type": "null"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {
            "type": "string" if all(isinstance(e.value, str) for e in hint) else "integer",
            "enum": [e.value for e in hint],
        }
    if origin is Literal:
        kinds = {type(a) for a in targs}
        out: dict[str, Any] = {"enum": list(targs)}
        if kinds == {str}:
            out["type"] = "string"
        elif kinds == {int}:
            out["type"] = "integer"
        return out
    if origin in (Union, types.UnionType):
        nullable = type(None) in targs
        rest = [a for a in targs if a is not type(None)]
        if nullable and len(rest) == 1:  # Optional[X], written as transformers does
            return {**_type_schema(rest[0], where), "nullable": True}
        subs = [_type_schema(a, where) for a in targs]
        simple = [s.get("type") for s in subs]
        if all(isinstance(t, str) for t in simple) and all(len(s) == 1 for s in subs):
            return {"type": simple}
        return {"anyOf": subs}
    if hint in (list, tuple, set) or origin in (list, tuple, set, typing.Sequence, abc.Sequence):
        out = {"type": "array"}
        if targs and targs[0] is not Ellipsis:
            out["items"] = _type_schema(targs[0], where)
        return out
    if hint is dict or origin in (dict, typing.Mapping, abc.Mapping):
        out = {"type": "object"}
        if len(targs) == 2:
            out["additionalProperties"] = _type_schema(targs[1], where)
        return out
    raise TypeError(
        f"{where}: cannot build a JSON schema for type {hint!r}; use str, int, float, bool, "
        "Literal[...], an Enum, list[...], dict[str, ...] or an Optional/Union of those"
    )


def function_schema(fn: Callable, name: str | None = None) -> dict[str, Any]:
    """The OpenAI-style JSON schema of a function, from its type hints and docstring.

    Every parameter (but `self`) needs a type hint; a parameter with a default is optional.

    Example:
        >>> def guess(n: int) -> str:
        ...     '''Guess the hidden number.
        ...
        ...     Args:
        ...         n: Your guess.
        ...     '''
        >>> function_schema(guess)["function"]["parameters"]["properties"]
        {'n': {'type': 'integer', 'description': 'Your guess.'}}
    """
    name = name or fn.__name__
    description, arg_docs = _parse_docstring(fn.__doc__ or "")
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # unresolved forward references
        raise TypeError(f"tool {name!r}: cannot resolve its type hints ({exc})") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if pname not in hints:
            raise TypeError(f"tool {name!r}: parameter {pname!r} needs a type hint")
        prop = _type_schema(hints[pname], f"tool {name!r}, parameter {pname!r}")
        if pname in arg_docs:
            prop["description"] = arg_docs[pname]
        if param.default is param.empty:
            required.append(pname)
        else:
            if param.default is not None and not callable(param.default):
                prop["default"] = param.default.value if isinstance(param.default, enum.Enum) else param.default
        properties[pname] = prop
    params: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        params["required"] = required
    return {
        "type": "function",
        "function": {"name": name, "description": description or name, "parameters": params},
    }


def collect_tools(cls: type) -> dict[str, Tool]:
    """All methods of `cls` (and its bases) marked with `@tool`, by tool name."""
    found: dict[str, Tool] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            tname = getattr(value, "__agentgym_tool__", None)
            if tname is not None:
                found[tname] = Tool(tname, function_schema(value, tname), value)
            elif attr in {t.fn.__name__ for t in found.values()}:
                # overridden without @tool in a subclass: no longer a tool
                found = {k: t for k, t in found.items() if t.fn.__name__ != attr}
    return found


# --------------------------------------------------------------------------- validation

_JSON_TYPE_CHECK: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _json_kind(v: Any) -> str:
    for kind in ("boolean", "integer", "number", "string", "array", "object", "null"):
        if _JSON_TYPE_CHECK[kind](v):
            return kind
    return type(v).__name__


def _short(v: Any, limit: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _check(value: Any, schema: Mapping[str, Any], path: str) -> None:
    if value is None and schema.get("nullable"):
        return
    if "enum" in schema and value not in schema["enum"]:
        raise ToolArgumentError(f"{path} must be one of {schema['enum']}, got {_short(value)}")
    if "anyOf" in schema:
        errors = []
        for sub in schema["anyOf"]:
            try:
                _check(value, sub, path)
                return
            except ToolArgumentError as exc:
                errors.append(str(exc))
        raise ToolArgumentError(" or ".join(errors))
    t = schema.get("type")
    if t is None:
        return
    kinds = t if isinstance(t, list) else (t,)
    if not any(_JSON_TYPE_CHECK[k](value) for k in kinds):
        want = " or ".join(kinds)
        raise ToolArgumentError(
            f"{path} must be {'an' if want[0] in 'aeiou' else 'a'} {want}, got {_json_kind(value)} {_short(value)}"
        )
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), Mapping):
        for k, item in value.items():
            _check(item, schema["additionalProperties"], f"{path}[{k!r}]")


def validate_arguments(tool: Tool, arguments: Any) -> dict[str, Any]:
    """Check `arguments` against the tool's schema; return them or raise `ToolArgumentError`.

    The message names the offending argument and shows the tool's signature.
    """
    params = tool.parameters
    props = params["properties"]
    if not isinstance(arguments, dict):
        raise ToolArgumentError(
            f'"arguments" must be a JSON object like {{"name": value}}, got {_json_kind(arguments)}'
        )
    for key in params.get("required", ()):
        if key not in arguments:
            raise ToolArgumentError(f"missing required argument {key!r}")
    for key, value in arguments.items():
        schema = props.get(key)
        if schema is None:
            allowed = ", ".join(props) or "none"
            raise ToolArgumentError(f"unknown argument {key!r} (arguments: {allowed})")
        _check(value, schema, f"argument {key!r}")
    return arguments
