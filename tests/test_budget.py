"""Budgets: turns, tokens per turn, total tokens per episode, summaries, the BATS tracker."""

import re

import gymnasium
import pytest

from agentgym.config import ConfigError, EvalConfig, load_config
from agentgym.eval import evaluate
from agentgym.policy import SamplingParams, ScriptedPolicy
from agentgym.rollout import EpisodeSpec, RolloutOptions, run_episodes
from agentgym.rollout.budget import Budget
from agentgym.rollout.context import SummarizeConfig
from tests.test_rollout import ENV, bisect


def test_budget_carries_the_env_side_as_reset_options_and_the_episodes_wrappers():
    budget = Budget(max_turns=6, budget_tracker=True, check_again=True)
    assert budget.reset_options("test-1") == {
        "task_id": "test-1",
        "max_turns": 6,
        "wrappers": ["check_again", "budget_tracker"],  # innermost first: the tracker counts the check's turn
    }
    assert Budget(max_turns=2).reset_options("t")["wrappers"] == []


def test_token_and_summary_budgets():
    budget, summaries = Budget(max_turns=4, max_total_tokens=100), SummarizeConfig(max_summaries=2)
    assert not budget.tokens_exceeded(100) and budget.tokens_exceeded(101)
    assert summaries.may_summarize(1) and not summaries.may_summarize(2)
    unlimited = Budget(max_turns=4), SummarizeConfig(max_summaries=None)
    assert not unlimited[0].tokens_exceeded(10**9) and unlimited[1].may_summarize(10**6)


@pytest.mark.parametrize("kwargs", [{"max_turns": 0}, {"max_turns": 2, "max_total_tokens": 0}])
def test_invalid_budgets_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be >= 1"):
        Budget(**kwargs)


def test_total_token_budget_ends_the_episode_overlong_before_the_env_sees_the_action(smol_tokenizer):
    reply = "<answer>0</answer>"  # out of range: feedback, the episode goes on
    per_turn = len(smol_tokenizer(reply, add_special_tokens=False)["input_ids"]) + 1
    budget = 3 * per_turn + 1  # room for 3 turns, not 4
    tasks = gymnasium.make(ENV).unwrapped.tasks("test")[:2]
    trajs = run_episodes(
        ScriptedPolicy(smol_tokenizer, lambda m: reply),
        lambda: gymnasium.make(ENV),
        ENV,
        [EpisodeSpec(t.id, 10) for t in tasks],
        SamplingParams(16),
        RolloutOptions(max_new_tokens=16, max_total_tokens=budget),
    )
    for traj in trajs:
        assert traj.end_reason == "overlong"
        assert traj.turns == 3 and traj.generated_tokens == 4 * per_turn  # the 4th action was never stepped


def test_eval_config_wires_the_budgets_and_the_tracker(smol_tokenizer, tmp_path):
    cfg = load_config(
        None,
        EvalConfig,
        [
            f"output_dir={tmp_path}",
            "env.num_tasks=8",
            "samples_per_task=1",
            "horizons=[8]",
            "progress=false",
            "rollout.budget_tracker=true",
            "rollout.max_total_tokens=30",
        ],
    )
    result = evaluate(cfg, ScriptedPolicy(smol_tokenizer, bisect))
    multi_turn = [t for t in result.trajectories if t.turns > 1]
    assert multi_turn
    for traj in multi_turn:
        observations = [m["content"] for m in traj.messages if m["role"] == "user"][1:]
        assert "<budget>turns used: 1, turns left: 7" in observations[0]
    for traj in result.trajectories:
        assert (traj.generated_tokens > 30) == (traj.end_reason == "overlong")
    assert result.summary["rollout"]["overlong_rate"] > 0
    assert (tmp_path / "metrics.json").exists()


def test_rollout_config_checks_its_values():
    with pytest.raises(ConfigError, match=re.escape("rollout.summarize.threshold must be in (0, 1]")):
        load_config(None, EvalConfig, ["rollout.summarize.threshold=1.5"])
    with pytest.raises(ConfigError, match=re.escape("did you mean 'rollout.summarize.max_summaries'")):
        load_config(None, EvalConfig, ["rollout.summarize.max_summary=4"])
    with pytest.raises(ConfigError, match=re.escape("rollout.context must be one of")):
        load_config(None, EvalConfig, ["rollout.context=truncate"])
