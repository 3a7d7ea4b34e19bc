"""OpenAIPolicy through the real `openai` client against a local OpenAI-compatible server."""

import gymnasium
import pytest

from agentgym.policy import OpenAIPolicy, SamplingParams
from agentgym.rollout import EpisodeSpec, run_episodes
from tests.openai_server import FakeOpenAI

ENV = "agentgym/GuessNumber-16-v0"


def rollout(policy, n=4):
    tasks = gymnasium.make(ENV).unwrapped.tasks("test")[:n]
    specs = [EpisodeSpec(t.id, 6) for t in tasks]
    return run_episodes(policy, lambda: gymnasium.make(ENV), ENV, specs, SamplingParams(32, temperature=0.0)), tasks


@pytest.mark.parametrize("token_ids", [True, False])
def test_completions_api_sends_token_ids_and_solves_episodes(smol_tokenizer, token_ids):
    with FakeOpenAI(smol_tokenizer, token_ids=token_ids) as server:
        policy = OpenAIPolicy("fake-model", base_url=server.base_url, tokenizer=smol_tokenizer)
        trajs, tasks = rollout(policy)
        policy.close()
        first = server.requests[0]
        assert isinstance(first["prompt"], list) and all(isinstance(i, int) for i in first["prompt"])
        assert first["max_tokens"] == 32 and first["temperature"] == 0.0
    for traj, task in zip(trajs, tasks, strict=True):
        assert traj.success and traj.turns == task.min_turns
        seg = traj.segments[0]
        expected = smol_tokenizer.apply_chat_template(traj.messages[:-1], tokenize=False)
        assert smol_tokenizer.decode(seg.input_ids, skip_special_tokens=False) == expected
        generated_lp = [lp for lp, m in zip(seg.logprobs, seg.loss_mask, strict=True) if m]
        assert -0.25 in generated_lp


def test_chat_api_sends_messages(smol_tokenizer):
    with FakeOpenAI(smol_tokenizer) as server:
        policy = OpenAIPolicy("fake-model", base_url=server.base_url, api="chat", tokenizer=smol_tokenizer)
        trajs, _ = rollout(policy, n=2)
        assert server.requests[0]["messages"][0]["role"] == "system"
        assert server.requests[0]["path"].endswith("/chat/completions")
    assert all(t.success for t in trajs)


def test_unreachable_server_is_an_error_not_a_hang(smol_tokenizer):
    import openai

    policy = OpenAIPolicy("m", base_url="http://127.0.0.1:9/v1", tokenizer=smol_tokenizer, timeout=2)
    policy.client = policy.client.with_options(max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        policy.generate([[1, 2]], SamplingParams(4))
