"""GuessNumber: find a hidden number from higher/lower feedback."""

from agentgym.registration import register as _register


def register() -> None:
    _register("GuessNumber-v0", "agentgym.envs.guess_number.env:GuessNumberEnv", n=100)
    _register(
        "GuessNumber-16-v0",
        "agentgym.envs.guess_number.env:GuessNumberEnv",
        description="GuessNumber in [1, 16]: the quickstart task (4-5 turns needed).",
        n=16,
    )
