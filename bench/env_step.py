"""Env steps per second under a scripted optimal policy (no LLM), per env.

Measures `env.step` on the unwrapped env (what the rollout pool calls), with tool-call
parsing and argument validation included, plus the oracle's own cost reported apart.
Goal: >= 50,000 steps/s per core for the synthetic envs.

    python bench/env_step.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import time

from agentgym.envs.guess_number.env import GuessNumberEnv
from agentgym.envs.guess_number.oracle import BisectionOracle
from agentgym.envs.kvsum.env import KVSumEnv
from agentgym.envs.kvsum.oracle import KVSumOracle
from goals import load_line


def record_actions(env, oracle, tasks):
    """Play each task once with the oracle, recording its actions, so the timed loop
    replays them and measures the env alone."""
    scripts = []
    for task in tasks:
        oracle.reset()
        obs, info = env.reset(options={"task_id": task.id})
        actions, done = [], False
        while not done:
            action = oracle.act(obs)
            actions.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        assert info["success"], f"oracle failed {task.id}"
        scripts.append((task.id, actions))
    return scripts


def time_env(env, scripts, seconds):
    steps = episodes = 0
    start = time.perf_counter()
    deadline = start + seconds
    step, reset = env.step, env.reset
    while time.perf_counter() < deadline:
        for task_id, actions in scripts:
            reset(options={"task_id": task_id})
            for action in actions:
                step(action)
            steps += len(actions)
            episodes += 1
    elapsed = time.perf_counter() - start
    return steps / elapsed, episodes / elapsed


def time_oracle(env, oracle, tasks, seconds):
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for task in tasks:
            oracle.reset()
            obs, _ = env.reset(options={"task_id": task.id})
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(oracle.act(obs))
                done = terminated or truncated
                steps += 1
    return steps / (time.perf_counter() - start)


CASES = {
    "GuessNumber-v0 (answer)": (lambda: GuessNumberEnv(n=100), lambda: BisectionOracle(100)),
    "GuessNumber-v0 (tool call)": (lambda: GuessNumberEnv(n=100), lambda: BisectionOracle(100, use_tool=True)),
    "KVSum-v0 (prompt, K=1)": (lambda: KVSumEnv(num_steps=20), KVSumOracle),
    "KVSum-Lookup-v0 (tool, K=2)": (lambda: KVSumEnv(num_steps=20, keys_per_turn=2, dictionary="tool"), KVSumOracle),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per env")
    parser.add_argument("--tasks", type=int, default=50, help="distinct tasks replayed")
    args = parser.parse_args()
    print(f"{'env':<30} {'steps/s (env)':>14} {'episodes/s':>11} {'steps/s (env+oracle)':>21}")
    for name, (make_env, make_oracle) in CASES.items():
        env = make_env()
        tasks = env.tasks("test")[: args.tasks]
        scripts = record_actions(env, make_oracle(), tasks)
        sps, eps = time_env(env, scripts, args.seconds)
        with_oracle = time_oracle(env, make_oracle(), tasks, args.seconds / 2)
        flag = "ok" if sps >= 50_000 else "BELOW GOAL"
        print(f"{name:<30} {sps:>14,.0f} {eps:>11,.0f} {with_oracle:>21,.0f}  {flag}")
    print("goal: >= 50,000 env steps/s per core (single process, one core)")

    print(load_line())


if __name__ == "__main__":
    main()
