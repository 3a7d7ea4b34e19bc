"""Tool schemas come from type hints and docstrings; arguments are validated before calls."""

from enum import Enum
from typing import Literal

import pytest

from agentgym.tools import Tool, ToolArgumentError, function_schema, validate_arguments


class Color(Enum):
    RED = "red"
    BLUE = "blue"


def search(query: str, k: int = 5, exact: bool = False, tags: list[str] | None = None) -> str:
    """Search the index for documents.

    Longer explanation that is not part of the description.

    Args:
        query: What to look for,
            possibly over two lines.
        k: How many results to return.
        exact: Match the phrase exactly.
        tags: Only documents with these tags.

    Returns:
        The ranked results.
    """
    return ""


def paint(color: Color, shade: Literal["light", "dark"], weight: float, meta: dict[str, int]) -> str:
    """Paint something."""
    return ""


def _tool(fn):
    return Tool(fn.__name__, function_schema(fn), fn)


def test_schema_has_description_types_defaults_and_required():
    schema = function_schema(search)
    fn = schema["function"]
    assert schema["type"] == "function"
    assert fn["name"] == "search"
    assert fn["description"] == "Search the index for documents."
    props = fn["parameters"]["properties"]
    assert props["query"] == {"type": "string", "description": "What to look for, possibly over two lines."}
    assert props["k"] == {"type": "integer", "description": "How many results to return.", "default": 5}
    assert props["exact"]["type"] == "boolean"
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "nullable": True,
        "description": "Only documents with these tags.",
    }
    assert fn["parameters"]["required"] == ["query"]


def test_schema_of_enums_literals_floats_and_dicts():
    props = function_schema(paint)["function"]["parameters"]["properties"]
    assert props["color"] == {"type": "string", "enum": ["red", "blue"]}
    assert props["shade"] == {"type": "string", "enum": ["light", "dark"]}
    assert props["weight"] == {"type": "number"}
    assert props["meta"] == {"type": "object", "additionalProperties": {"type": "integer"}}


def test_schema_matches_transformers_get_json_schema():
    transformers_utils = pytest.importorskip("transformers.utils")

    def lookup(key: str, page: int) -> str:
        """Read the value of a key.

        Args:
            key: The key to read.
            page: Which page.
        """
        return ""

    expected = transformers_utils.get_json_schema(lookup)
    expected["function"].pop("return", None)  # agentgym does not describe return values
    assert function_schema(lookup) == expected


def test_missing_type_hint_is_a_clear_error():
    def bad(x) -> str:
        """Bad."""
        return ""

    with pytest.raises(TypeError, match="parameter 'x' needs a type hint"):
        function_schema(bad)


def test_unsupported_type_is_a_clear_error():
    def bad(x: object) -> str:
        """Bad."""
        return ""

    with pytest.raises(TypeError, match="cannot build a JSON schema"):
        function_schema(bad)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required argument 'query'"),
        ({"query": 3}, "argument 'query' must be a string, got integer 3"),
        ({"query": "x", "k": "5"}, "argument 'k' must be an integer, got string '5'"),
        ({"query": "x", "k": True}, "argument 'k' must be an integer, got boolean True"),
        ({"query": "x", "k": 2.5}, "argument 'k' must be an integer, got number 2.5"),
        ({"query": "x", "limit": 3}, "unknown argument 'limit' (arguments: query, k, exact, tags)"),
        ({"query": "x", "tags": ["a", 1]}, "argument 'tags'[1] must be a string"),
        ([1, 2], '"arguments" must be a JSON object'),
    ],
)
def test_invalid_arguments_are_named_in_the_error(arguments, message):
    with pytest.raises(ToolArgumentError) as info:
        validate_arguments(_tool(search), arguments)
    assert message in str(info.value)


def test_valid_arguments_pass_unchanged():
    args = {"query": "x", "k": 3, "tags": None}
    assert validate_arguments(_tool(search), args) == args
    assert validate_arguments(_tool(paint), {"color": "red", "shade": "dark", "weight": 1, "meta": {"a": 1}})


def test_enum_violation_lists_the_choices():
    with pytest.raises(ToolArgumentError, match=r"must be one of \['light', 'dark'\]"):
        validate_arguments(_tool(paint), {"color": "red", "shade": "grey", "weight": 1.0, "meta": {}})


def test_signature_line_is_readable():
    assert _tool(search).signature_line().startswith("search(query: string, k: integer = optional")
