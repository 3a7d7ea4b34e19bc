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
    from agentgym.policy.openai_api import PolicyServerError

    policy = OpenAIPolicy("m", base_url="http://127.0.0.1:9/v1", tokenizer=smol_tokenizer, timeout=2)
    policy.client = policy.client.with_options(max_retries=0)
    with pytest.raises(PolicyServerError, match=r"http://127\.0\.0\.1:9/v1: cannot reach the server"):
        policy.generate([[1, 2]], SamplingParams(4))


def test_the_tokenizer_is_the_served_models_own(plain_tokenizer, tmp_path):
    from tests.conftest import PLAIN_TEMPLATE

    folder = tmp_path / "served-model"  # e.g. `transformers serve DIR` knows the model by its folder
    plain_tokenizer.save_pretrained(folder)
    policy = OpenAIPolicy(str(folder), base_url="http://127.0.0.1:9/v1")
    assert policy.tokenizer.chat_template == PLAIN_TEMPLATE
    policy.close()


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once, no network


def test_a_served_model_whose_tokenizer_does_not_load_is_an_error_that_says_to_set_policy_tokenizer(offline, capsys):
    from agentgym.cli import main
    from agentgym.policy import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match=r"'acme/served-7b'.*set policy\.tokenizer"):
        OpenAIPolicy("acme/served-7b", base_url="http://127.0.0.1:9/v1")
    args = ["eval", "policy.backend=openai", "policy.model=acme/served-7b", "policy.base_url=http://127.0.0.1:9/v1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "set policy.tokenizer" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_completion_requests_set_every_sampling_field_so_server_defaults_never_apply(smol_tokenizer):
    with FakeOpenAI(smol_tokenizer) as server:
        policy = OpenAIPolicy("fake-model", base_url=server.base_url, tokenizer=smol_tokenizer)
        policy.generate([[1, 2, 3]], SamplingParams(4, temperature=0.7, top_k=5))
        policy.close()
        request = server.requests[0]
    assert request["temperature"] == 0.7 and request["top_p"] == 1.0 and request["top_k"] == 5
    assert request["repetition_penalty"] == 1.0 and request["min_p"] == 0.0


def test_the_chat_api_refuses_top_k_it_cannot_send():
    from agentgym.config import ConfigError, EvalConfig, load_config

    with pytest.raises(ConfigError, match=r"sampling\.top_k: the chat API has no top_k"):
        load_config(None, EvalConfig, ["policy.backend=openai", "policy.api=chat", "sampling.top_k=5"])


def test_a_text_only_server_gets_the_rendered_prompt_and_the_trajectories_say_they_were_retokenized(
    smol_tokenizer, capsys
):
    with FakeOpenAI(smol_tokenizer, text_only=True) as server:
        policy = OpenAIPolicy("fake-model", base_url=server.base_url, tokenizer=smol_tokenizer)
        trajs, _ = rollout(policy)
        policy.close()
        last = server.requests[-1]
    assert all(t.success and t.retokenized for t in trajs)
    assert isinstance(last["prompt"], str) and last["prompt"].startswith("<|im_start|>system")
    err = capsys.readouterr().err
    assert "refuses token-id prompts" in err and "prompt must be a string." in err
    assert "refuses vLLM's sampling fields" in err
    exact = OpenAIPolicy("fake-model", base_url=server.base_url, tokenizer=smol_tokenizer, prompt="token_ids")
    assert exact.send_ids  # token_ids mode never falls back: a refusal is an error


def test_a_refused_request_is_one_line_with_the_servers_own_reason(smol_tokenizer, capsys):
    from agentgym.cli import main

    with FakeOpenAI(smol_tokenizer, pinned="served-model") as server:
        args = [
            "eval",
            "policy.backend=openai",
            "policy.model=smollm2-135m",
            f"policy.base_url={server.base_url}",
            "env.num_tasks=1",
            "samples_per_task=1",
            "horizons=[1]",
            "progress=false",
            "output_dir=/tmp/agentgym-refused",
        ]
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "the server refused the request for model 'smollm2-135m' (400: Server is pinned to 'served-model'" in err[0]
