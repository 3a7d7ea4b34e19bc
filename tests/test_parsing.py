"""The action parser: tool calls and answers in, a ParsedAction out, never an exception."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym.parsing import ActionParser, ToolCall

parser = ActionParser(max_calls=4)


def call(name, **arguments):
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def test_one_tool_call_with_reasoning_around_it():
    parsed = parser.parse("Let me look.\n" + call("search", query="x", k=3) + "\nthen read")
    assert parsed.error is None
    assert parsed.calls == (ToolCall("search", {"query": "x", "k": 3}),)


def test_several_tool_calls_in_one_message_keep_their_order():
    parsed = parser.parse(call("a", x=1) + call("b") + "\n" + call("c", y="z"))
    assert [c.name for c in parsed.calls] == ["a", "b", "c"]


def test_answer_is_stripped():
    assert parser.parse("So: <answer>  Paris \n</answer>").answer == "Paris"


def test_arguments_as_json_string_and_parameters_alias_are_accepted():
    a = parser.parse('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>')
    b = parser.parse('<tool_call>{"name": "f", "parameters": {"x": 1}}</tool_call>')
    assert a.calls == b.calls == (ToolCall("f", {"x": 1}),)


def test_code_fence_inside_tool_call_is_accepted():
    parsed = parser.parse('<tool_call>\n```json\n{"name": "f", "arguments": {}}\n```\n</tool_call>')
    assert parsed.calls == (ToolCall("f", {}),)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no action found in an empty message"),
        ("I think it is 42", "no action found in 'I think it is 42'"),
        ("<answer>42", "the <answer> tag is not closed"),
        ("42</answer>", "without a matching <answer>"),
        ("<answer>1</answer><answer>2</answer>", "give exactly one <answer>"),
        ('<tool_call>{"name": "f"}', "tag is not closed"),
        ("<tool_call>{name: f}</tool_call>", "the JSON of the tool call is invalid"),
        ("<tool_call>[1, 2]</tool_call>", "must be a JSON object"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'has no "name" string'),
        (
            '<tool_call>{"name": "f", "arguments": [1]}</tool_call>',
            '"arguments" of the tool call must be a JSON object',
        ),
        ('<tool_call>{"name": "f", "args": {}}</tool_call>', "unexpected keys ['args']"),
        ('<tool_call><tool_call>{"name": "f"}</tool_call></tool_call>', "must not be nested"),
        (call("f") + "<answer>1</answer>", "both a tool call and an answer"),
        (call("f") * 5, "5 tool calls in one message; at most 4"),
        (call("f") + '<tool_call>{"name": 1}</tool_call>', 'tool call #2 has no "name" string'),
    ],
)
def test_malformed_actions_say_what_is_wrong(text, fragment):
    parsed = parser.parse(text)
    assert parsed.calls == () and parsed.answer is None
    assert fragment in parsed.error


def test_error_messages_show_the_right_format():
    assert '<tool_call>{"name": "TOOL_NAME"' in parser.parse("<tool_call>oops</tool_call>").error


def test_parser_without_answers_treats_answer_tags_as_text():
    p = ActionParser(allow_answer=False)
    assert "no action found" in p.parse("<answer>1</answer>").error
    assert "<answer>" not in p.format_help


TAGS = ["<tool_call>", "</tool_call>", "<answer>", "</answer>", '{"name": ', '"arguments": ', "{", "}", "[", '"', "\\"]
fragments = st.one_of(
    st.text(max_size=30), st.sampled_from(TAGS), st.sampled_from(["\x00", "\x1b[31m", "\ud7ff", "🙂"])
)


@settings(max_examples=400, deadline=None)
@given(st.lists(fragments, max_size=25).map("".join))
def test_fuzzed_messages_never_raise_and_give_one_verdict(text):
    parsed = parser.parse(text)
    verdicts = [parsed.error is not None, parsed.answer is not None, bool(parsed.calls)]
    assert sum(verdicts) == 1
    if parsed.error is not None:
        assert len(parsed.error) > 20


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=20,
    )
)
def test_any_json_value_as_arguments_never_raises(value):
    text = "<tool_call>" + json.dumps({"name": "f", "arguments": value}) + "</tool_call>"
    parsed = parser.parse(text)
    accepted = isinstance(value, dict) or value is None or (isinstance(value, str) and _decodes_to_object(value))
    assert bool(parsed.calls) == accepted
    assert (parsed.error is None) == accepted


def _decodes_to_object(text):
    if not text.strip():
        return True
    try:
        return isinstance(json.loads(text), dict | type(None))
    except json.JSONDecodeError:
        return False


def test_very_long_and_deeply_nested_inputs_are_handled():
    assert parser.parse("x" * 1_000_000).error
    deep = "<tool_call>" + "[" * 100_000 + "]" * 100_000 + "</tool_call>"
    assert "invalid" in parser.parse(deep).error or "JSON object" in parser.parse(deep).error


def test_numbers_past_pythons_int_string_limit_are_invalid_json_not_exceptions():
    huge = "9" * 5000  # json.loads raises ValueError past sys.get_int_max_str_digits() (4,300)
    as_object = parser.parse('<tool_call>{"name": "f", "arguments": {"n": ' + huge + "}}</tool_call>")
    assert "a number is too long" in as_object.error
    as_string = parser.parse(json_call({"name": "f", "arguments": '{"n": ' + huge + "}"}))
    assert "a number is too long" in as_string.error


def test_an_arguments_string_nested_100k_deep_is_invalid_json_not_a_recursion_error():
    parsed = parser.parse(json_call({"name": "f", "arguments": "[" * 100_000}))
    assert 'the "arguments" string of the tool call is not valid JSON (nested too deeply)' in parsed.error


def json_call(obj):
    return "<tool_call>" + json.dumps(obj) + "</tool_call>"


@pytest.mark.parametrize(
    ("text", "value"), [("42", 42), (" -7. ", -7), ("+3", 3), ("0" * 300 + "5", 5), ("9" * 100, int("9" * 100))]
)
def test_parse_integer_reads_whole_numbers(text, value):
    from agentgym.parsing import parse_integer

    assert parse_integer(text) == value


@pytest.mark.parametrize(("text", "fragment"), [("fifty", "not a whole number"), ("9" * 5000, "5000 digits")])
def test_parse_integer_says_what_is_wrong_whatever_the_size(text, fragment):
    from agentgym.parsing import parse_integer

    assert fragment in parse_integer(text)
