"""TTI's check-again and BATS' budget tracker as wrappers of any text env."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium
import pytest

import agentgym
from agentgym.env import CHECK_AGAIN
from agentgym.rollout.budget import budget_revealing_options, budget_visible
from agentgym.rollout.episode import RolloutOptions
from agentgym.spaces import UnicodeText
from agentgym.wrappers import BudgetTracker, CheckAgain, episode_env

GOLDEN = Path(__file__).parent / "data" / "check_again_budget_tracker_0_1.json"
KEYS = ("turn", "max_turns", "turns_left", "tool_calls", "invalid_action", "success")


class Echo(gymnasium.Env):
    """A text env that is not a TextEnv: echoes the action; "done" ends the episode, with
    reward 1; it has no turn budget of its own and reports nothing in `info`."""

    observation_space = UnicodeText()
    action_space = UnicodeText()

    def __init__(self, hook: bool = True):
        if hook:
            self.is_final_answer = lambda action: action.startswith("done")
        self.seen: list[str] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self.seen = []
        return "say something", {}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        self.seen.append(action)
        done = action.startswith("done")
        return f"you said {action}", float(done), done, False, {}


def test_check_again_and_the_budget_tracker_play_exactly_as_the_reset_options_of_0_1_did():
    # The golden file holds 0.1's transcripts (TextEnv.reset(options={"check_again": ...,
    # "budget_tracker": ...}) at commit 985cece) of random actions on a ToolEnv and a TextEnv.
    records = json.loads(GOLDEN.read_text())
    assert {(r["ca"], r["bt"]) for r in records} == {(False, False), (False, True), (True, False), (True, True)}
    assert sum("check your work" in s[1] for r in records for s in r["steps"]) > 10
    for r in records:
        names = [n for n, on in (("check_again", r["ca"]), ("budget_tracker", r["bt"])) if on]
        env = episode_env(agentgym.make(r["env"]), names)
        env.reset(seed=r["seed"], options={"max_turns": r["budget"]})
        for action, *expected in r["steps"]:
            obs, reward, term, trunc, info = env.step(action)
            assert [obs, reward, term, trunc, {k: info.get(k) for k in KEYS}] == expected, (r["env"], names, action)


def test_check_again_on_an_env_that_is_not_a_text_env_asks_once_and_spends_a_turn():
    env = CheckAgain(Echo())
    obs, _ = env.reset(options={"max_turns": 3})
    assert obs == "say something"
    assert env.step("hello")[:4] == ("you said hello", 0.0, False, False)
    assert env.step("done: 4") == (CHECK_AGAIN, 0.0, False, False, {})
    assert env.unwrapped.seen == ["hello"]  # the env never saw the first final answer
    obs, reward, term, trunc, _ = env.step("done: 5")
    assert (obs, reward, term, trunc) == ("you said done: 5", 1.0, True, False)
    # The intercepted turn counts: with a budget of 2, the check itself spends it.
    env.reset(options={"max_turns": 2})
    env.step("hello")
    obs, _, term, trunc, _ = env.step("done")
    assert obs == CHECK_AGAIN + "\nThe turn budget (2) is spent; the episode ends." and trunc and not term


def test_after_a_check_the_wrapper_ends_the_episode_when_the_budget_is_spent():
    env = CheckAgain(Echo())
    env.reset(options={"max_turns": 3})
    env.step("done")
    env.step("hmm")
    obs, _, term, trunc, _ = env.step("still thinking")  # turn 3 of 3: the env saw only 2 turns
    assert trunc and not term and obs.endswith("The turn budget (3) is spent; the episode ends.")


def test_check_again_needs_the_final_answer_hook_or_a_predicate():
    with pytest.raises(TypeError, match=r"is_final_answer\(action\).*is_final="):
        CheckAgain(Echo(hook=False))
    env = CheckAgain(Echo(hook=False), is_final=lambda a: a == "42")
    env.reset()
    assert env.step("done")[2]  # not final for this predicate: passed on, and the env ends
    env.reset()
    assert env.step("42")[0] == CHECK_AGAIN


def test_the_budget_tracker_on_an_env_that_is_not_a_text_env_reports_what_it_knows():
    env = BudgetTracker(CheckAgain(Echo()))
    env.reset(options={"max_turns": 4})
    assert env.step("hi")[0] == "you said hi\n<budget>turns used: 1, turns left: 3</budget>"
    assert env.step("done")[0] == CHECK_AGAIN + "\n<budget>turns used: 2, turns left: 2</budget>"
    assert env.step("done")[0] == "you said done"  # the episode ended: no line
    unbounded = BudgetTracker(Echo())
    unbounded.reset()
    assert unbounded.step("hi")[0] == "you said hi\n<budget>turns used: 1</budget>"


def test_what_shows_the_agent_its_budget_is_a_property_of_the_components():
    assert BudgetTracker.reveals_budget and not CheckAgain.reveals_budget
    assert budget_revealing_options(RolloutOptions(check_again=True)) == []
    assert not budget_visible(RolloutOptions(check_again=True))
    assert budget_revealing_options(RolloutOptions(budget_tracker=True, announce_budget=True)) == [
        "announce_budget",
        "budget_tracker",
    ]


def test_the_reset_options_of_0_1_name_the_wrapper_that_replaced_them():
    env = agentgym.make("GuessNumber-16-v0")
    with pytest.raises(ValueError, match=r"agentgym\.wrappers\.CheckAgain\(env\)"):
        env.reset(options={"check_again": True})
    with pytest.raises(ValueError, match=r"agentgym\.wrappers\.BudgetTracker\(env\)"):
        env.reset(options={"budget_tracker": True})
    env.reset(options={"check_again": False})  # off is what it always was


def test_one_pool_runs_episodes_with_and_without_the_wrappers_on_the_same_envs(smol_tokenizer):
    from agentgym.envs.guess_number.oracle import BisectionOracle

    from agentgym.policy import SamplingParams, ScriptedPolicy
    from agentgym.rollout import EpisodeSpec, RolloutPool, env_maker

    env_id = "agentgym/GuessNumber-16-v0"
    policy = ScriptedPolicy(smol_tokenizer, BisectionOracle(16))
    specs = [EpisodeSpec("guess16-test-0000", 6, sample=s, seed=s) for s in range(2)]
    with RolloutPool(env_maker(env_id), env_id, max_concurrent=2) as pool:
        on = pool.run(policy, specs, SamplingParams(32), RolloutOptions(check_again=True, budget_tracker=True))
        off = pool.run(policy, specs, SamplingParams(32), RolloutOptions())
    for wrapped, plain in zip(on, off, strict=True):
        seen = [m["content"] for m in wrapped.messages if m["role"] == "user"][1:]
        assert all("<budget>" in o for o in seen[:-1]) and sum(CHECK_AGAIN in o for o in seen) == 1
        assert not any("<budget>" in m["content"] or CHECK_AGAIN in m["content"] for m in plain.messages)
        assert wrapped.success and plain.success and wrapped.turns == plain.turns + 1
