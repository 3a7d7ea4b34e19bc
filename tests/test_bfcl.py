"""BFCL multi-turn: replaying the ground truth scores 1, doing nothing scores 0, BFCL's checks apply per turn.

Needs bfcl-eval (CI installs it: `pip install --no-deps bfcl-eval==2026.3.23 mpmath`).
"""

import json
import sys
import threading

import gymnasium
import pytest

pytest.importorskip("bfcl_eval", reason="bfcl-eval is not installed: pip install --no-deps bfcl-eval==2026.3.23 mpmath")

from agentgym.envs.tools.bfcl import data
from agentgym.envs.tools.bfcl.env import MAX_STEPS_PER_TURN, BFCLMultiTurnEnv
from agentgym.envs.tools.bfcl.tasks import end_turn_action, gold_actions
from gymnasium.utils.env_checker import check_env

import agentgym

BFCL_IDS = [e.id for e in agentgym.list_envs() if e.id.startswith("agentgym/BFCL-")]
# Entries whose ground truth cannot be replayed through the offered tools (BFCL data bugs):
# the "*_173" entries pass ticket_id="ticket_001" where the schema says integer, and
# miss_func_49 calls `tail` in turn 1 while BFCL only adds it in turn 3.
TYPE_BUGS = {f"multi_turn_{c}_173" for c in data.CATEGORIES}
HELD_OUT_BUG = {"multi_turn_miss_func_49"}


def call(name, **arguments):
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def play(env, task, actions):
    _, info = env.reset(options={"task_id": task.id})
    total, terminated, truncated = 0.0, False, False
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            break
    return total, terminated, info


def test_five_bfcl_envs_are_registered():
    assert set(BFCL_IDS) == {
        "agentgym/BFCL-MultiTurn-v0",
        "agentgym/BFCL-MultiTurn-Base-v0",
        "agentgym/BFCL-MultiTurn-MissFunc-v0",
        "agentgym/BFCL-MultiTurn-MissParam-v0",
        "agentgym/BFCL-MultiTurn-LongContext-v0",
    }


@pytest.mark.parametrize("env_id", BFCL_IDS)
def test_check_env_passes(env_id):
    check_env(gymnasium.make(env_id).unwrapped, skip_render_check=True)


def test_every_category_has_200_tasks_in_test():
    env = BFCLMultiTurnEnv()
    assert len(env.tasks("test")) == 800 and env.tasks("train") == []
    for category in data.CATEGORIES:
        assert len(BFCLMultiTurnEnv(categories=category).tasks("test")) == 200


def test_train_fraction_splits_deterministically_and_disjointly():
    a, b = BFCLMultiTurnEnv(train_fraction=0.5, task_seed=3), BFCLMultiTurnEnv(train_fraction=0.5, task_seed=3)
    train, test = {t.id for t in a.tasks("train")}, {t.id for t in a.tasks("test")}
    assert train == {t.id for t in b.tasks("train")} and not train & test and len(train | test) == 800


@pytest.mark.parametrize("category", data.CATEGORIES)
def test_ground_truth_replay_scores_one_on_every_task_of_the_category(category):
    env = BFCLMultiTurnEnv(categories=category, validate_types=False)
    failed = set()
    for task in env.tasks("test"):
        total, terminated, info = play(env, task, gold_actions(task))
        assert terminated
        if total != 1.0 or not info["success"]:
            failed.add(task.id)
    assert failed == {t for t in HELD_OUT_BUG if category in t}


def test_with_type_validation_the_schema_violating_ground_truth_is_rejected():
    env = BFCLMultiTurnEnv(categories="base")
    task = env.get_task("multi_turn_base_173")
    total, _, info = play(env, task, gold_actions(task))
    assert total == 0.0
    env.reset(options={"task_id": task.id})
    obs, *_, info = env.step(call("close_ticket", ticket_id="ticket_001"))
    assert info["invalid_action"] and "argument 'ticket_id' must be an integer" in obs


@pytest.mark.parametrize("category", data.CATEGORIES)
def test_policy_that_calls_nothing_scores_zero_on_every_task(category):
    env = BFCLMultiTurnEnv(categories=category)
    for task in env.tasks("test"):
        total, terminated, info = play(env, task, [end_turn_action()] * len(task.metadata["entry"].questions))
        assert terminated and total == 0.0
        assert info["bfcl_error"]["error_type"] == "multi_turn:empty_turn_model_response"


def test_tool_schemas_are_the_task_function_docs_in_openai_form():
    env = BFCLMultiTurnEnv(categories="base")
    _, info = env.reset(options={"task_id": "multi_turn_base_0"})
    names = [s["function"]["name"] for s in info["tools"]]
    expected = [d["name"] for c in ("TwitterAPI", "GorillaFileSystem") for d in data.function_docs(c)]
    assert names == expected
    assert all(s["type"] == "function" and s["function"]["parameters"]["type"] == "object" for s in info["tools"])
    types = {p["type"] for s in info["tools"] for p in s["function"]["parameters"]["properties"].values()}
    assert types <= {"string", "integer", "number", "boolean", "array", "object"}


def test_miss_func_offers_the_held_out_function_only_from_its_turn():
    env = BFCLMultiTurnEnv(categories="miss_func")
    _, info = env.reset(options={"task_id": "multi_turn_miss_func_0"})  # `sort` is added at turn 3
    assert "sort" not in [s["function"]["name"] for s in info["tools"]]
    obs, *_, info = env.step(call("sort", file_name="final_report.pdf"))
    assert info["invalid_action"] and "unknown tool 'sort'" in obs
    for _ in range(3):
        obs, *_, info = env.step(end_turn_action())
    assert "New functions:" in obs and '"name": "sort"' in obs
    assert "sort" in [s["function"]["name"] for s in info["tools"]]


def test_several_calls_in_one_message_run_in_order_against_the_backends():
    env = BFCLMultiTurnEnv(categories="base")
    env.reset(options={"task_id": "multi_turn_base_0"})
    obs, *_, info = env.step(call("cd", folder="document") + call("mkdir", dir_name="temp") + call("ls"))
    assert obs.count("<tool_response") == 3
    assert '"current_directory_content": ["final_report.pdf", "previous_report.pdf", "temp"]' in obs
    assert info["tool_calls"] == 3 and not info["invalid_action"]


def test_backend_errors_come_back_as_tool_responses():
    env = BFCLMultiTurnEnv(categories="base")
    env.reset(options={"task_id": "multi_turn_base_0"})
    obs, _, terminated, _, info = env.step(call("cd", folder="no_such_dir"))
    assert "No such file or directory" in obs and not terminated and not info["invalid_action"]


def test_a_bad_argument_rejects_the_whole_message_before_anything_runs():
    env = BFCLMultiTurnEnv(categories="base")
    env.reset(options={"task_id": "multi_turn_base_0"})
    obs, *_, info = env.step(call("mkdir", dir_name="x") + call("cd", folder="x", depth=1))
    assert info["invalid_action"] and "unknown argument 'depth'" in obs
    obs, *_ = env.step(call("ls"))
    assert '"x"' not in obs


def test_malformed_tool_call_is_invalid_and_does_not_end_the_turn():
    env = BFCLMultiTurnEnv(categories="base")
    env.reset(options={"task_id": "multi_turn_base_0"})
    obs, _, terminated, _, info = env.step('<tool_call>{"name": "ls"')
    assert info["invalid_action"] and not terminated and "is not closed" in obs
    assert env.turn_index == 0


def test_episodes_start_from_fresh_backends():
    env = BFCLMultiTurnEnv(categories="base")
    env.reset(options={"task_id": "multi_turn_base_0"})
    env.step(call("mkdir", dir_name="leak"))
    env.reset(options={"task_id": "multi_turn_base_0"})
    obs, *_ = env.step(call("ls"))
    assert "leak" not in obs


def test_a_wrong_state_fails_the_state_checker():
    env = BFCLMultiTurnEnv(categories="base")
    task = env.get_task("multi_turn_base_0")
    actions = gold_actions(task)
    actions.insert(1, call("mkdir", dir_name="extra"))
    total, terminated, info = play(env, task, actions)
    assert terminated and total == 0.0
    assert info["bfcl_error"]["error_type"] == "multi_turn:instance_state_mismatch"
    assert info["bfcl_error"]["turn"] == 0


def test_a_missing_response_fails_the_response_checker():
    env = BFCLMultiTurnEnv(categories="base")
    task = env.get_task("multi_turn_base_0")  # turn 1's ground truth: cd to temp, then grep a file
    actions = gold_actions(task)
    actions[2] = call("cd", folder="temp")  # same state, but the grep result is missing
    total, _, info = play(env, task, actions)
    assert total == 0.0 and info["bfcl_error"]["error_type"] == "multi_turn:execution_response_mismatch"


def test_more_than_twenty_call_messages_in_one_turn_force_terminate():
    env = BFCLMultiTurnEnv(categories="base")
    task = env.get_task("multi_turn_base_0")
    total, terminated, info = play(env, task, [call("pwd")] * (MAX_STEPS_PER_TURN + 1))
    assert terminated and total == 0.0 and info["bfcl_error"]["error_type"] == "multi_turn:force_terminated"


def test_min_turns_counts_call_messages_and_turn_endings():
    env = BFCLMultiTurnEnv(categories="base")
    for task in env.tasks("test")[:50]:
        assert task.min_turns == len(gold_actions(task))


def test_missing_bfcl_eval_raises_an_error_naming_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "bfcl_eval", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps bfcl-eval==2026\.3\.23"):
        data.data_dir()


def test_concurrent_episodes_replay_independently():
    env0 = BFCLMultiTurnEnv(categories="long_context", validate_types=False)
    tasks = env0.tasks("test")[:64]
    results = {}

    def worker(chunk):
        env = BFCLMultiTurnEnv(categories="long_context", validate_types=False)
        for task in chunk:
            results[task.id] = play(env, task, gold_actions(task))[0]

    threads = [threading.Thread(target=worker, args=(tasks[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {t.id: 1.0 for t in tasks}


MATH_TASK = next(e.id for e in data.load_category("base") if "MathAPI" in e.involved_classes)


@pytest.mark.parametrize(
    ("name", "arguments", "fragment"),
    [
        ("power", {"base": 10, "exponent": 5000}, "digits"),
        ("power", {"base": 10, "exponent": 10**8}, "digits"),  # minutes of one C call, if it ran
        ("multiply", {"a": int("9" * 4000), "b": int("9" * 4000)}, "4300 digits"),
        ("square_root", {"number": 2, "precision": 10**7}, "precision"),
        ("logarithm", {"value": 10, "base": 2, "precision": 10**6}, "precision"),
    ],
)
def test_runaway_math_calls_come_back_as_the_tools_error(name, arguments, fragment):
    env = BFCLMultiTurnEnv(categories="base", validate_types=False)
    env.reset(options={"task_id": MATH_TASK})
    obs, _, terminated, _, info = env.step(call(name, **arguments))
    assert "Error during execution" in obs and fragment in obs and not terminated and not info["invalid_action"]


def test_math_tools_leave_no_process_wide_precision_changed():
    import decimal

    import mpmath

    env = BFCLMultiTurnEnv(categories="base")
    env.reset(options={"task_id": MATH_TASK})
    before = decimal.getcontext().prec, mpmath.mp.dps
    obs, *_ = env.step(
        call("square_root", number=2.0, precision=50) + call("logarithm", value=10.0, base=2.0, precision=40)
    )
    assert "1.41421356237309504880168872420969807856967187537" in obs  # computed at 50 digits
    assert "3.32192809488736234787031942948939017586" in obs  # and at 40, printed at 40
    assert (decimal.getcontext().prec, mpmath.mp.dps) == before
