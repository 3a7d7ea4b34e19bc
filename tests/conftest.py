"""Shared fixtures. Tests import `agentgym.envs...`, never a bare `envs`."""

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture
def guess_env():
    from agentgym.envs.guess_number.env import GuessNumberEnv

    env = GuessNumberEnv(n=100)
    yield env
    env.close()


@pytest.fixture(scope="session")
def smol_tokenizer():
    """SmolLM2's tokenizer (ChatML template); the embedded model is converted once per machine."""
    from agentgym.policy import load_tokenizer

    return load_tokenizer("smollm2-135m")


#: A second, non-ChatML chat template: plain-text role headers and <|endoftext|> as end of turn.
PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### User:\n{{ m['content'] }}\n\n"
    "{% else %}### Assistant:\n{{ m['content'] }}<|endoftext|>\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)


@pytest.fixture(scope="session")
def plain_tokenizer(smol_tokenizer):
    import copy

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = PLAIN_TEMPLATE
    tok.eos_token = "<|endoftext|>"
    return tok
