"""KVSum: the long-horizon execution task of "The Illusion of Diminishing Returns"."""

from agentgym.registration import register as _register


def register() -> None:
    _register("KVSum-v0", "agentgym.envs.kvsum.env:KVSumEnv", dictionary="prompt")
    _register(
        "KVSum-Lookup-v0",
        "agentgym.envs.kvsum.env:KVSumEnv",
        description="KVSum with the dictionary behind a lookup(key) tool: look up, then answer, each step.",
        dictionary="tool",
    )
