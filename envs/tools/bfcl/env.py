"""BFCL multi-turn: the Berkeley Function Calling Leaderboard's multi-turn tasks as a `ToolEnv`.

Each BFCL entry is a conversation of several user requests against stateful backends
(a file system, a trading bot, a travel agency, a car, messaging and posting apps, a
math library). The episode delivers one user request at a time:

- a message with `<tool_call>` tags runs the calls against the episode's own backends
  (validated against the schemas first; BFCL's result strings come back);
- a message without a tool call (e.g. `<answer>Done.</answer>`, or plain text) ends the
  current request, as a reply without function calls ends a turn in BFCL's inference;
  the next request is the observation;
- after the last request the episode ends, scored as BFCL scores it (see `scoring.py`):
  reward 1.0 if every turn passes the state and response checks, else 0.0.

As in BFCL, more than 20 tool-call messages in one request end the episode as a failure
("force-terminated"). miss_func entries hold functions out until the turn where BFCL adds
them; that turn's observation shows their schemas and `info["tools"]` gains them.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from agentgym.envs.tools.bfcl.backends import Backends
from agentgym.envs.tools.bfcl.data import CATEGORIES, Entry, function_docs, tool_schema
from agentgym.envs.tools.bfcl.scoring import TurnScorer
from agentgym.envs.tools.bfcl.tasks import make_tasks

from agentgym.env import Outcome, Task
from agentgym.parsing import ActionParser
from agentgym.tool_env import ToolEnv
from agentgym.tools import Tool

#: BFCL's `MAXIMUM_STEP_LIMIT`: a turn with more model steps than this is force-terminated.
MAX_STEPS_PER_TURN = 20
#: BFCL's `DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC`, the user message of a miss_func turn.
ADDED_FUNCTIONS_PROMPT = "I have updated some more functions you can choose from. What about now?"
PROTOCOL = (
    "You are helping a user with a series of requests, one at a time, using the tools. "
    "Call tools until the current request is fulfilled, then reply without any tool call "
    "(for example <answer>Done.</answer>) to receive the next request. If no tool fits or a "
    "required parameter is missing, say so in a reply without tool calls."
)


class _Dispatch:
    """The `fn` of a dynamic tool: `ToolEnv.run_calls` calls `fn(env, **arguments)`.
    A class rather than a closure so that the env's tools stay picklable."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __call__(self, env: BFCLMultiTurnEnv, **arguments: Any) -> str:
        return env.execute(self.name, arguments)


def _untyped(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema that `validate_arguments` checks when types are not validated: same
    argument names and required ones, no types (the agent still sees the typed schema)."""
    params = schema["function"]["parameters"]
    props = {k: {"description": v.get("description", "")} for k, v in params["properties"].items()}
    function = {**schema["function"], "parameters": {**params, "properties": props}}
    return {**schema, "function": function}


class BFCLMultiTurnEnv(ToolEnv):
    """BFCL v4 multi-turn function calling: several user requests against stateful backends, scored by BFCL's checker.

    Args:
        categories: BFCL multi-turn categories to include ("base", "miss_func",
            "miss_param", "long_context"); 200 entries each.
        train_fraction: share of the entries moved to the "train" split (seeded by
            `task_seed`); 0 keeps the whole benchmark in "test", as published.
        max_calls_per_message: the most tool calls one message may hold.
        validate_types: check argument types against the schemas before running a call
            (agentgym's default). False checks only argument names and required arguments,
            which is closer to BFCL, whose executor runs any call; the ground truth of the
            four "*_173" entries passes a string where the schema says integer.
        **kwargs: `TextEnv` arguments (max_turns, split, task_seed, render_mode); the
            split defaults to "test".

    Example:
        >>> env = gymnasium.make("agentgym/BFCL-MultiTurn-Base-v0")
        >>> obs, info = env.reset(options={"task_id": "multi_turn_base_0"})
        >>> obs, r, term, trunc, info = env.step('<tool_call>{"name": "ls", "arguments": {}}</tool_call>')
    """

    default_max_turns = 50
    parser: ClassVar[ActionParser] = ActionParser(max_calls=64)

    def __init__(
        self,
        categories: tuple[str, ...] | list[str] | str = CATEGORIES,
        train_fraction: float = 0.0,
        max_calls_per_message: int = 64,
        validate_types: bool = True,
        **kwargs: Any,
    ):
        kwargs.setdefault("split", "test")
        super().__init__(**kwargs)
        categories = (categories,) if isinstance(categories, str) else tuple(categories)
        unknown = [c for c in categories if c not in CATEGORIES]
        if unknown or not categories:
            raise ValueError(f"unknown BFCL categories {unknown}; choose from {list(CATEGORIES)}")
        if not 0.0 <= train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in [0, 1], got {train_fraction}")
        self.categories = categories
        self.train_fraction = train_fraction
        self.validate_types = validate_types
        if max_calls_per_message != self.parser.max_calls:
            self.parser = ActionParser(max_calls=max_calls_per_message)
        self._tools, self._schemas = {}, []
        self.entry: Entry | None = None

    def make_tasks(self, split: str) -> list[Task]:
        return make_tasks(self.categories, split, self.train_fraction, self.task_seed)

    # ------------------------------------------------------------ tools per task

    def _offer(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """Offer the entry's functions (all but the held-out ones), or add `names`; returns the new schemas."""
        held = {n for names_ in self.entry.held_out.values() for n in names_}
        added = []
        for class_name in self.entry.involved_classes:
            for doc in function_docs(class_name):
                name = doc["name"]
                wanted = name in names if names is not None else name not in held
                if wanted and name not in self._tools:
                    schema = tool_schema(doc)
                    checked = schema if self.validate_types else _untyped(schema)
                    self._tools[name] = Tool(name, checked, _Dispatch(name))
                    added.append(schema)
        self._schemas = [*self._schemas, *added]  # a new list: earlier infos keep what they showed
        return added

    def execute(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one validated call on the episode's backends and log its result for scoring."""
        result = self.backends.call(name, arguments)
        self._step_results.append(result)
        return result

    # ------------------------------------------------------------ episode

    def setup(self, task: Task) -> str:
        self.entry = task.metadata["entry"]
        self.backends = Backends(self.entry)
        self.scorer = TurnScorer(Backends(self.entry))
        self._tools, self._schemas = {}, []
        self._offer()
        self.turn_index = 0
        self.turn_steps: list[list[str]] = []
        self._step_results: list[str] = []
        self.replies: list[str] = []
        return f"{PROTOCOL}\n\n{self._request(0)}"

    def _request(self, index: int) -> str:
        question = self.entry.questions[index]
        if question is not None:
            return f"User: {question}"
        added = self._offer(list(self.entry.held_out.get(index, ())))
        listing = "\n".join(json.dumps(s, ensure_ascii=False) for s in added)
        return f"New functions:\n{listing}\nUser: {ADDED_FUNCTIONS_PROMPT}"

    @property
    def action_format(self) -> str:
        call_help = self.parser.format_help.splitlines()[0]
        return f"{call_help}\nTo end the current request, reply without any tool call, e.g. <answer>Done.</answer>."

    def is_final_answer(self, action: str) -> bool:
        # a reply without tool calls ends one request; only the reply to the last one is final
        no_call = self.parser.call_open not in action and self.parser.call_close not in action
        return no_call and self.entry is not None and self.turn_index == len(self.entry.questions) - 1

    def transition(self, action: str) -> Outcome:
        parsed = self.parser.parse(action)
        if self.parser.call_open not in action and self.parser.call_close not in action:
            # no tool call: the reply to the user, which ends the request (as in BFCL)
            return self._end_turn(parsed.answer if parsed.answer is not None else action.strip())
        if parsed.error is not None:
            return Outcome(f"Invalid action: {parsed.error}", invalid=True)
        self._step_results = []
        outcome = self.run_calls(parsed.calls)
        if not self._step_results:  # rejected before anything ran (unknown tool, bad arguments)
            return outcome
        self.turn_steps.append(self._step_results)
        if len(self.turn_steps) > MAX_STEPS_PER_TURN:
            self.scorer.failure = self.scorer.failure or {
                "error_type": "multi_turn:force_terminated",
                "error_message": f"Model has been forced to quit after {MAX_STEPS_PER_TURN} steps.",
                "turn": self.turn_index,
            }
            text = f"{outcome.observation}\nMore than {MAX_STEPS_PER_TURN} tool-call messages for one request: the episode ends."
            return Outcome(text, 0.0, True, False, info=self._score_info())
        return outcome

    def _end_turn(self, reply: str) -> Outcome:
        self.replies.append(reply)
        index = self.turn_index
        self.scorer.end_turn(index, self.entry.ground_truth[index], self.backends, self.turn_steps)
        self.turn_index += 1
        self.turn_steps = []
        if self.turn_index == len(self.entry.questions):
            success = self.scorer.failure is None
            text = "All requests are done: the episode is over."
            return Outcome(text, float(success), True, success, info=self._score_info())
        return Outcome(self._request(self.turn_index), info={"user_turn": self.turn_index})

    def _score_info(self) -> dict[str, Any]:
        return {
            "user_turn": self.turn_index,
            "bfcl_valid": self.scorer.failure is None and self.turn_index == len(self.entry.questions),
            "bfcl_error": self.scorer.failure,
            "category": self.entry.category,
        }
