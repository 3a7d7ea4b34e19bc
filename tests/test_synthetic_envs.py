"""GuessNumber and KVSum: optimal play wins at exactly the minimum turns and fails below."""

import gymnasium
import pytest
from agentgym.envs.guess_number.env import GuessNumberEnv
from agentgym.envs.guess_number.oracle import BisectionOracle, ConsistentRandomGuesser
from agentgym.envs.guess_number.tasks import bisection_turns
from agentgym.envs.kvsum.env import KVSumEnv
from agentgym.envs.kvsum.oracle import KVSumOracle
from gymnasium.utils.env_checker import check_env

import agentgym


def play(env, oracle, task_id, max_turns):
    oracle.reset()
    obs, info = env.reset(options={"task_id": task_id, "max_turns": max_turns})
    total, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
        total += reward
    return total, info


@pytest.mark.parametrize(
    "env_id", [e.id for e in agentgym.list_envs() if e.id.split("/")[1].startswith(("GuessNumber", "KVSum"))]
)
def test_check_env_passes(env_id):
    check_env(gymnasium.make(env_id).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("use_tool", [False, True])
def test_bisection_wins_guess_number_at_exactly_min_turns(use_tool):
    env = GuessNumberEnv(n=100)
    for task in env.tasks("test")[:40]:
        total, info = play(env, BisectionOracle(100, use_tool), task.id, task.min_turns)
        assert info["success"] and total == 1.0 and info["turn"] == task.min_turns


def test_consistent_random_guesser_stays_inside_the_feedback_interval_and_always_wins():
    env = GuessNumberEnv(n=16, guess_tool=False)
    guesser = ConsistentRandomGuesser(16, seed=0)
    firsts, turns = set(), []
    for task in env.tasks("test")[:60]:
        obs, info = env.reset(options={"task_id": task.id, "max_turns": 16})
        messages, lo, hi = [{"role": "user", "content": obs}], 1, 16
        while True:
            reply = guesser.respond(messages)
            k = int(reply.removeprefix("<answer>").removesuffix("</answer>"))
            assert lo <= k <= hi  # never a guess the feedback already ruled out
            if len(messages) == 1:
                firsts.add(k)
            obs, _, terminated, truncated, info = env.step(reply)
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": obs}]
            lo, hi = (k + 1, hi) if "higher" in obs else ((lo, k - 1) if "lower" in obs else (lo, hi))
            if terminated or truncated:
                break
        assert info["success"]
        turns.append(info["turn"])
    assert len(firsts) > 8  # random: episodes differ from their first guess on
    assert sum(turns) / len(turns) > 3.5  # slower than bisection's ~3.4 on [1, 16]


def test_guess_number_fails_below_min_turns():
    env = GuessNumberEnv(n=100)
    hard = [t for t in env.tasks("test") if t.min_turns > 1][:20]
    for task in hard:
        total, info = play(env, BisectionOracle(100), task.id, task.min_turns - 1)
        assert not info["success"] and total == 0.0


def test_guess_number_min_turns_span_log2_n():
    env = GuessNumberEnv(n=100)
    turns = {t.min_turns for t in env.tasks("train")}
    assert max(turns) == bisection_turns(100, 100) == 7 and min(turns) <= 3


def test_guess_number_out_of_range_guess_is_a_tool_error():
    env = GuessNumberEnv(n=16)
    env.reset(seed=0)
    obs, _, terminated, _, _ = env.step('<tool_call>{"name": "guess", "arguments": {"n": 99}}</tool_call>')
    assert "99 is out of range: guess a number between 1 and 16" in obs and not terminated


def test_guess_number_non_numeric_answer_is_invalid():
    env = GuessNumberEnv()
    env.reset(seed=0)
    obs, *_, info = env.step("<answer>fifty</answer>")
    assert info["invalid_action"] and "write a whole number" in obs


def test_guess_number_final_answer_mode_ends_on_a_wrong_answer():
    env = GuessNumberEnv(n=100, answer_is_final=True)
    task = next(t for t in env.tasks("test") if t.metadata["target"] != 50)
    env.reset(options={"task_id": task.id})
    _, reward, terminated, _, info = env.step("<answer>50</answer>")
    assert terminated and reward == 0 and not info["success"]


@pytest.mark.parametrize("dictionary", ["prompt", "tool"])
@pytest.mark.parametrize("keys_per_turn", [1, 3])
def test_kvsum_oracle_wins_at_exactly_min_turns(dictionary, keys_per_turn):
    env = KVSumEnv(num_steps=6, keys_per_turn=keys_per_turn, dictionary=dictionary)
    for task in env.tasks("test")[:10]:
        total, info = play(env, KVSumOracle(), task.id, task.min_turns)
        assert info["success"] and info["turn"] == task.min_turns
        assert total == pytest.approx(1.0)
        assert info["step_accuracy"] == info["turn_accuracy"] == info["task_accuracy"] == 1.0


@pytest.mark.parametrize("dictionary", ["prompt", "tool"])
def test_kvsum_fails_below_min_turns(dictionary):
    env = KVSumEnv(num_steps=5, dictionary=dictionary)
    task = env.tasks("test")[0]
    _, info = play(env, KVSumOracle(), task.id, task.min_turns - 1)
    assert not info["success"]


def test_kvsum_accuracies_after_one_wrong_step():
    env = KVSumEnv(num_steps=4, feedback=True)
    env.reset(options={"task_id": "kvsum-test-0000"})
    sums = env.sums
    obs, r1, *_ = env.step(f"<answer>{sums[0] + 1}</answer>")  # wrong
    assert obs.startswith("Incorrect.") and r1 == 0
    _, r2, *_, info = env.step(f"<answer>{sums[1] + 1}</answer>")  # right increment, wrong sum
    assert r2 == 0
    assert info["turn_accuracy"] == 0.5 and info["step_accuracy"] == 0.0
    assert info["task_accuracy"] == 0.0 and info["first_error_step"] == 1
    _, r3, *_, info = env.step(f"<answer>{sums[2]}</answer>")
    assert r3 == pytest.approx(0.25) and info["step_accuracy"] == pytest.approx(1 / 3)


def test_kvsum_task_reward_mode_pays_only_at_the_end():
    env = KVSumEnv(num_steps=3, reward="task")
    total, info = play(env, KVSumOracle(), "kvsum-train-0003", 3)
    assert total == 1.0 and info["success"]


def test_kvsum_prompt_mode_offers_no_tools_and_lookup_mode_does():
    assert KVSumEnv(dictionary="prompt").tool_schemas == []
    assert [t["function"]["name"] for t in KVSumEnv(dictionary="tool").tool_schemas] == ["lookup"]


def test_kvsum_unknown_key_is_a_tool_error():
    env = KVSumEnv(dictionary="tool")
    env.reset(seed=0)
    obs, *_ = env.step('<tool_call>{"name": "lookup", "arguments": {"key": "zzzzz"}}</tool_call>')
    assert "Error: unknown key 'zzzzz'" in obs


@pytest.mark.parametrize("cls", [GuessNumberEnv, KVSumEnv])
def test_tasks_are_deterministic_from_the_seed_and_splits_are_disjoint(cls):
    a, b, c = cls(task_seed=3), cls(task_seed=3), cls(task_seed=4)
    assert a.tasks("train") == b.tasks("train")
    assert [t.metadata for t in a.tasks("test")] == [t.metadata for t in b.tasks("test")]
    assert [t.metadata for t in a.tasks("test")] != [t.metadata for t in c.tasks("test")]
    assert not {t.id for t in a.tasks("train")} & {t.id for t in a.tasks("test")}


def test_kvsum_episode_content_is_deterministic():
    a, b = KVSumEnv(), KVSumEnv()
    assert a.reset(options={"task_id": "kvsum-test-0007"})[0] == b.reset(options={"task_id": "kvsum-test-0007"})[0]
    words = list(a.episode.dictionary)
    assert len(words) == len(set(words)) == 100 and all(len(w) == 5 for w in words)
    assert all(-99 <= v <= 99 for v in a.episode.dictionary.values())


@pytest.mark.parametrize("env_cls", [GuessNumberEnv, KVSumEnv])
def test_a_five_thousand_digit_answer_is_an_invalid_action(env_cls):
    env = env_cls()
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step(f"<answer>{'9' * 5000}</answer>")
    assert info["invalid_action"] and not terminated and "5000 digits" in obs
