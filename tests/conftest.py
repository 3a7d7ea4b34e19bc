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
