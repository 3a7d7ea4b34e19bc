"""The oracle protocol: `respond(messages)`; `ReplayOracle` serves oracles written turn by turn."""

import pytest
from agentgym.envs.guess_number.env import GuessNumberEnv
from agentgym.envs.guess_number.oracle import BisectionOracle
from agentgym.envs.kvsum.env import KVSumEnv
from agentgym.envs.kvsum.oracle import KVSumOracle


@pytest.mark.parametrize(
    ("make_env", "make_oracle"),
    [
        (lambda: GuessNumberEnv(n=100), lambda: BisectionOracle(100)),
        (lambda: KVSumEnv(num_steps=4, keys_per_turn=2, dictionary="tool"), KVSumOracle),
    ],
    ids=["bisection", "kvsum-lookup"],
)
def test_a_shared_replay_oracle_gives_each_episode_its_own_state(make_env, make_oracle):
    """Episodes interleaved through one oracle's `respond` get the replies that an oracle
    of their own, played turn by turn with `act`, gives them."""
    shared = make_oracle()
    episodes = []
    for task in make_env().tasks("test")[:3]:
        env, own = make_env(), make_oracle()
        obs, _ = env.reset(options={"task_id": task.id, "max_turns": task.min_turns})
        episodes.append({"env": env, "own": own, "obs": obs, "messages": [{"role": "system", "content": "Play."}]})
    while any("info" not in ep for ep in episodes):
        for ep in (ep for ep in episodes if "info" not in ep):
            ep["messages"].append({"role": "user", "content": ep["obs"]})
            reply = shared.respond(ep["messages"])
            assert reply == ep["own"].act(ep["obs"])
            ep["messages"].append({"role": "assistant", "content": reply})
            ep["obs"], _, terminated, truncated, info = ep["env"].step(reply)
            if terminated or truncated:
                ep["info"] = info
    assert all(ep["info"]["success"] for ep in episodes)
