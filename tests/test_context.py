"""Context strategies: SUPO summarization and keep-last-K, with exact segments and masks."""

import re

import gymnasium
import pytest

from agentgym.policy import SamplingParams, ScriptedPolicy
from agentgym.rollout import EpisodeSpec, RolloutOptions, RolloutStats, rollout_metrics, run_episodes
from agentgym.rollout.context import (
    PLACEHOLDER,
    STAGE,
    SUMMARY_REQUEST,
    KeepLastKConfig,
    SummarizeConfig,
    extract_summary,
)
from tests.test_rollout import ENV as GUESS

KV = "agentgym/KVSum-v0"
KV_KWARGS = {"num_steps": 16, "dict_size": 10}
PADDING = "I look up each key of this step in the dictionary and add its value to the running sum. "
_STEP = re.compile(r"Step (\d+)/\d+\. Keys: ([a-z, ]+)\.")
_ENTRY = re.compile(r"^([a-z]{5}): (-?\d+)$", re.MULTILINE)
_SUMMARY = re.compile(r"running sum after step (\d+) is (-?\d+)")


def kv_agent(msgs):
    """A KVSum agent that keeps no state of its own: it reads the dictionary from the
    task, the running sum from a summary if one is visible, and the keys of the steps it
    can see. Asked for a summary, it writes down the running sum: the state it needs."""
    users = [m["content"] for m in msgs if m["role"] == "user"]
    dictionary = {k: int(v) for k, v in _ENTRY.findall(users[0])}
    base_step, total = 0, 0
    steps = {}
    for text in users:
        for step, value in _SUMMARY.findall(text):
            base_step, total = int(step), int(value)
        for step, keys in _STEP.findall(text):
            steps[int(step)] = keys.split(", ")
    last = max(steps)
    total += sum(dictionary[k] for s in range(base_step + 1, last + 1) for k in steps[s])
    if msgs[-1]["content"] == SUMMARY_REQUEST:
        return f"<summary>The running sum after step {last} is {total}.</summary>"
    return f"{PADDING}<answer>{total}</answer>"


def kv_run(tokenizer, n=3, stats=None, context="full", **summarize):
    """`n` KVSum episodes of 16 steps in a 700-token window; `summarize`: the parameters
    of the summarize strategy (`SummarizeConfig`)."""
    tasks = gymnasium.make(KV, **KV_KWARGS).unwrapped.tasks("test")[:n]
    config = SummarizeConfig(**summarize) if context == "summarize" else None
    options = RolloutOptions(max_new_tokens=64, max_context_tokens=700, context=context, context_config=config)
    return run_episodes(
        ScriptedPolicy(tokenizer, kv_agent),
        lambda: gymnasium.make(KV, **KV_KWARGS),
        KV,
        [EpisodeSpec(t.id, 20) for t in tasks],
        SamplingParams(64),
        options,
        stats=stats,
    )


def test_summarize_finishes_a_task_longer_than_the_window_where_full_is_cut_off(smol_tokenizer):
    full = kv_run(smol_tokenizer)
    assert all(t.end_reason == "overlong" and t.turns < 16 for t in full)
    stats = RolloutStats()
    summarized = kv_run(smol_tokenizer, context="summarize", max_summaries=10, stats=stats)
    for traj in summarized:
        assert traj.end_reason == "success" and traj.turns == 16
        assert traj.summaries >= 2 and len(traj.segments) == traj.summaries + 1
        assert [s.kind for s in traj.segments] == ["summary"] * traj.summaries + ["turns"]
        assert all(len(s) <= 700 for s in traj.segments)
    metrics = rollout_metrics(summarized, stats)
    assert metrics["summaries_per_episode"] == pytest.approx(sum(t.summaries for t in summarized) / 3)
    assert metrics["compression_ratio"] > 1.0 and metrics["success_rate"] == 1.0


def _segment_conversations(traj):
    """Split the readable log into what the policy saw in each segment: a summary
    request ends a segment after its reply (the observation logged just before the
    request was held back from that context); the next one starts from system + the
    summarized-context message."""
    log, system = traj.messages, traj.messages[0]
    convs, current = [], [log[0], log[1]]
    i = 2
    while i < len(log):
        current.append(log[i])
        if log[i]["role"] == "user" and log[i]["content"] == SUMMARY_REQUEST:
            del current[-2]  # the held-back observation
            current.append(log[i + 1])
            convs.append(current)
            current = [system, log[i + 2]]
            i += 3
            continue
        i += 1
    convs.append(current[:-1])  # the final observation is never shown to the policy
    return convs


def test_every_segment_decodes_to_exactly_the_template_rendering_of_what_the_policy_saw(smol_tokenizer):
    tok = smol_tokenizer
    for traj in kv_run(tok, n=2, context="summarize", max_summaries=10):
        convs = _segment_conversations(traj)
        assert len(convs) == len(traj.segments)
        for seg, conv in zip(traj.segments, convs, strict=True):
            assert tok.decode(seg.input_ids, skip_special_tokens=False) == tok.apply_chat_template(conv, tokenize=False)
            assert len(seg.completion_ids) == len(seg.loss_mask) == len(seg.logprobs)
        fresh = convs[1][1]["content"]
        assert fresh.startswith(traj.messages[1]["content"]) and STAGE in fresh and "The latest observation:" in fresh


@pytest.mark.parametrize("train", [True, False])
def test_summary_tokens_are_masked_by_train_on_summaries(smol_tokenizer, train):
    tok = smol_tokenizer
    (traj,) = kv_run(tok, n=1, context="summarize", max_summaries=10, train_on_summaries=train)
    replies = [m["content"] for m in traj.messages if m["role"] == "assistant"]
    summaries = [r for r in replies if r.startswith("<summary>")]
    assert len(summaries) == traj.summaries > 0
    summary_tokens = sum(len(tok(s, add_special_tokens=False)["input_ids"]) + 1 for s in summaries)
    masked = sum(sum(s.loss_mask) for s in traj.segments)
    assert masked == traj.generated_tokens - (0 if train else summary_tokens)
    for seg, summary in zip(traj.segments[:-1], summaries, strict=True):
        # The summary (and its end-of-turn token) is the segment's last completion; only
        # the template's closing newline follows it.
        n = len(tok(summary, add_special_tokens=False)["input_ids"]) + 1
        assert seg.loss_mask[-1 - n : -1] == [int(train)] * n and seg.loss_mask[-2 - n] == 0
        assert extract_summary(summary).startswith("The running sum after step")


def test_max_summaries_ends_the_episode_overlong(smol_tokenizer):
    trajs = kv_run(smol_tokenizer, n=2, context="summarize", max_summaries=1)
    for traj in trajs:
        assert traj.end_reason == "overlong" and traj.summaries == 1 and traj.turns < 16


def test_raising_max_summaries_at_evaluation_helps(smol_tokenizer):
    """Evaluation can allow more summaries than training did (SUPO's test-time scaling)."""
    few = kv_run(smol_tokenizer, n=2, context="summarize", max_summaries=1)
    many = kv_run(smol_tokenizer, n=2, context="summarize", max_summaries=20)
    assert sum(t.success for t in many) > sum(t.success for t in few) == 0


def guess_wrong(msgs):
    return "<answer>0</answer>"  # out of range: the env answers with feedback, the episode goes on


def test_keep_last_k_shows_exactly_the_last_k_observations(smol_tokenizer):
    tok, k, horizon = smol_tokenizer, 2, 7
    tasks = gymnasium.make(GUESS).unwrapped.tasks("test")[:2]
    trajs = run_episodes(
        ScriptedPolicy(tok, guess_wrong),
        lambda: gymnasium.make(GUESS),
        GUESS,
        [EpisodeSpec(t.id, horizon) for t in tasks],
        SamplingParams(16),
        RolloutOptions(max_new_tokens=16, context="keep_last_k", context_config=KeepLastKConfig(k=k)),
    )
    for traj in trajs:
        assert traj.end_reason == "over_turn" and traj.turns == horizon
        # Turns 1..k+1 share the first segment; from then on every turn starts a new one.
        assert len(traj.segments) == horizon - k
        log = traj.messages
        for j, seg in enumerate(traj.segments[1:], start=1):
            seen = log[: 2 + 2 * (k + j)]  # system, task, then (action, observation) pairs
            observations = [i for i in range(3, len(seen), 2)]
            expected = [
                {"role": "user", "content": PLACEHOLDER} if i in observations[:-k] else m for i, m in enumerate(seen)
            ]
            prompt = tok.apply_chat_template(expected, tokenize=False, add_generation_prompt=True)
            assert tok.decode(seg.prompt_ids, skip_special_tokens=False) == prompt
            assert sum(seg.loss_mask) == len(seg.loss_mask) - 1  # one action, then the closing newline
        last_prompt = tok.decode(traj.segments[-1].prompt_ids)
        assert last_prompt.count(PLACEHOLDER) == horizon - 1 - k
