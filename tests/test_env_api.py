"""The TextEnv/ToolEnv contract: budgets, info, and bad actions as observations."""

import json

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import agentgym
from agentgym import Outcome, Task, ToolEnv, ToolError, tool


class Counter(ToolEnv):
    """Count up to a target with an add tool, then answer the total."""

    default_max_turns = 5

    def make_tasks(self, split):
        return [Task(f"{split}-{t}", f"Reach {t}.", split, min_turns=t + 1, metadata={"t": t}) for t in (1, 2, 3)]

    def setup(self, task):
        self.total, self.target = 0, task.metadata["t"]
        return task.instruction

    @tool
    def add(self, amount: int = 1) -> str:
        """Add to the total.

        Args:
            amount: How much to add (1 or 2).
        """
        if amount not in (1, 2):
            raise ToolError("amount must be 1 or 2")
        self.total += amount
        return f"total={self.total}"

    @tool
    def explode(self) -> str:
        """A buggy tool."""
        raise RuntimeError("bug in the env")

    def on_answer(self, answer):
        ok = answer == str(self.target) == str(self.total)
        return Outcome("right" if ok else "wrong", reward=float(ok), terminated=True, success=ok)


ADD = '<tool_call>{"name": "add", "arguments": {}}</tool_call>'


def test_check_env_passes_on_a_tool_env():
    check_env(Counter(), skip_render_check=True)


def test_reset_picks_the_task_and_reports_it_in_info():
    env = Counter()
    obs, info = env.reset(options={"task_id": "test-2"})
    assert obs == "Reach 2."
    assert info["task_id"] == "test-2" and info["instruction"] == "Reach 2."
    assert info["turn"] == 0 and info["turns_left"] == info["max_turns"] == 5
    assert [t["function"]["name"] for t in info["tools"]] == ["add", "explode"]


def test_reset_with_the_same_seed_draws_the_same_task():
    a = [Counter().reset(seed=7)[1]["task_id"] for _ in range(3)]
    assert len(set(a)) == 1


def test_unknown_task_id_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown task_id 'nope'"):
        Counter().reset(options={"task_id": "nope"})


def test_turn_budget_truncates_the_episode():
    env = Counter()
    env.reset(options={"task_id": "train-3", "max_turns": 2})
    _, _, terminated, truncated, info = env.step(ADD)
    assert not terminated and not truncated and info["turns_left"] == 1
    obs, _, terminated, truncated, info = env.step(ADD)
    assert truncated and not terminated and info["turns_left"] == 0
    assert "turn budget (2) is spent" in obs


def test_winning_at_exactly_min_turns():
    env = Counter()
    _, info = env.reset(options={"task_id": "train-2", "max_turns": 3})
    env.step(ADD)
    env.step(ADD)
    _, reward, terminated, truncated, info = env.step("<answer>2</answer>")
    assert (reward, terminated, truncated, info["success"], info["tool_calls"]) == (1.0, True, False, True, 2)


def test_several_calls_in_one_message_run_in_order():
    env = Counter()
    env.reset(options={"task_id": "train-3"})
    obs, *_, info = env.step(ADD + '<tool_call>{"name": "add", "arguments": {"amount": 2}}</tool_call>')
    assert obs.index("total=1") < obs.index("total=3")
    assert info["tool_calls"] == 2


def test_invalid_call_runs_no_call_of_the_message():
    env = Counter()
    env.reset(options={"task_id": "train-3"})
    obs, *_, info = env.step(ADD + '<tool_call>{"name": "add", "arguments": {"amount": "two"}}</tool_call>')
    assert info["invalid_action"] and info["tool_calls"] == 0
    assert "argument 'amount' must be an integer" in obs and "Usage: add(amount: integer" in obs


def test_unknown_tool_lists_the_available_ones():
    env = Counter()
    env.reset()
    obs, *_, info = env.step('<tool_call>{"name": "mul", "arguments": {}}</tool_call>')
    assert info["invalid_action"]
    assert "unknown tool 'mul'. Available tools: add, explode" in obs


def test_tool_error_is_the_tool_response_and_the_episode_goes_on():
    env = Counter()
    env.reset()
    obs, _, terminated, _, info = env.step('<tool_call>{"name": "add", "arguments": {"amount": 5}}</tool_call>')
    assert "Error: amount must be 1 or 2" in obs and not terminated and not info["invalid_action"]
    assert info["tool_errors"] == 1


def test_a_bug_in_a_tool_propagates_so_the_rollout_can_abort_the_episode():
    env = Counter()
    env.reset()
    with pytest.raises(RuntimeError, match="bug in the env"):
        env.step('<tool_call>{"name": "explode", "arguments": {}}</tool_call>')


def test_non_string_action_is_an_invalid_observation():
    env = Counter()
    env.reset()
    obs, *_, info = env.step(42)
    assert info["invalid_action"] and "must be a string" in obs


def test_step_after_the_end_says_to_reset():
    env = Counter()
    env.reset()
    env.step("<answer>1</answer>")
    obs, reward, terminated, _, _ = env.step(ADD)
    assert terminated and reward == 0 and "call reset()" in obs


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        Counter().tasks("dev")


def test_render_ansi_shows_the_last_exchange():
    env = Counter(render_mode="ansi")
    env.reset(options={"task_id": "train-1"})
    env.step(ADD)
    assert env.render() == ">>> " + ADD + '\n<tool_response name="add">\ntotal=1\n</tool_response>'


def test_restricting_tools_hides_them_from_schemas_and_calls():
    env = Counter()
    env.restrict_tools(["add"])
    _, info = env.reset()
    assert [t["function"]["name"] for t in info["tools"]] == ["add"]
    obs, *_ = env.step('<tool_call>{"name": "explode", "arguments": {}}</tool_call>')
    assert "unknown tool 'explode'" in obs
    assert [t["function"]["name"] for t in Counter().tool_schemas] == ["add", "explode"]


def test_env_made_through_gymnasium_registry():
    agentgym.register("Counter-test-v0", Counter)
    env = gymnasium.make("agentgym/Counter-test-v0", max_turns=3)
    _, info = env.reset(seed=0)
    assert info["max_turns"] == 3
    assert env.unwrapped.tasks("test")[0].id == "test-1"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.sampled_from([ADD, "<answer>", "<tool_call>{}</tool_call>", "\x00" * 10]))
def test_fuzzed_actions_never_raise(action):
    env = Counter()
    env.reset(seed=0)
    obs, _, _, _, info = env.step(action)
    assert isinstance(obs, str) and obs
    assert info["turn"] == 1


# Inputs that once crashed or stalled an env: numbers past Python's int-string limit,
# nesting past the recursion limit, and arguments that make a math tool run away.
huge_number = st.integers(1, 6000).map(lambda n: "9" * n)
deep = st.integers(1, 20_000).map(lambda n: "[" * n + "]" * n)
runaway_call = st.sampled_from(["power", "multiply", "square_root", "logarithm"]).flatmap(
    lambda name: st.fixed_dictionaries(
        {
            "name": st.just(name),
            "arguments": st.dictionaries(
                st.sampled_from(["base", "exponent", "a", "b", "number", "value", "precision"]),
                st.integers(-(10**12), 10**12) | st.integers(1, 4000).map(lambda n: int("9" * n)),
                max_size=3,
            ),
        }
    )
)
nasty_action = st.one_of(
    huge_number.map(lambda n: f"<answer>{n}</answer>"),
    huge_number.map(lambda n: '<tool_call>{"name": "add", "arguments": {"amount": ' + n + "}}</tool_call>"),
    deep.map(lambda d: '<tool_call>{"name": "add", "arguments": ' + d + "}</tool_call>"),
    deep.map(lambda d: json.dumps({"name": "add", "arguments": d[: len(d) // 2]})).map(
        lambda j: f"<tool_call>{j}</tool_call>"
    ),
    runaway_call.map(lambda c: f"<tool_call>{json.dumps(c)}</tool_call>"),
)


def _nasty_envs():
    from agentgym.envs.guess_number.env import GuessNumberEnv
    from agentgym.envs.kvsum.env import KVSumEnv

    envs = [Counter(), GuessNumberEnv(), KVSumEnv(dictionary="tool")]
    try:
        from agentgym.envs.tools.bfcl import data
        from agentgym.envs.tools.bfcl.env import BFCLMultiTurnEnv
    except ImportError:
        return envs
    bfcl = BFCLMultiTurnEnv(categories="base", validate_types=False)
    bfcl.math_task = next(e.id for e in data.load_category("base") if "MathAPI" in e.involved_classes)
    return [*envs, bfcl]


NASTY_ENVS = _nasty_envs()


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(NASTY_ENVS))), nasty_action)
def test_huge_numbers_deep_nesting_and_runaway_tool_arguments_are_observations(which, action):
    env = NASTY_ENVS[which]
    env.reset(seed=0, options={"task_id": getattr(env, "math_task", None)})
    obs, _, _, _, info = env.step(action)
    assert isinstance(obs, str) and obs and info["turn"] == 1
