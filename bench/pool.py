"""Rollout pool throughput: Ray env workers on an I/O-bound env, and Ray's overhead.

1. Episodes/s with 1, 2, 4 and 8 Ray env workers on `Sleep200-bench-v0`, an env whose
   step sleeps 200 ms (a stand-in for a browser), under a scripted policy. The waits
   overlap across workers, so on a 2-core machine the goal is >= 0.7 x linear scaling
   at 8 workers.
2. The overhead of the Ray backend over the in-process one on a fast env (GuessNumber-16
   with the bisection oracle; goal <= 10%).

    python bench/pool.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster

import gymnasium
import ray
from agentgym.envs.guess_number.oracle import BisectionOracle
from goals import load_line

import agentgym
from agentgym import Outcome, Task, TextEnv
from agentgym.policy import SamplingParams, ScriptedPolicy, load_tokenizer
from agentgym.rollout import EpisodeSpec, RolloutOptions, RolloutPool, RolloutStats, env_maker
from agentgym.rollout.workers import init_ray


class Sleep200(TextEnv):
    """Every step sleeps 200 ms (waiting on I/O, as a browser does); `turns` steps an episode."""

    def __init__(self, turns: int = 3, sleep_s: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.turns, self.sleep_s = turns, sleep_s

    def make_tasks(self, split):
        return [Task(f"{split}-{i}", "Reply with anything.", split, min_turns=self.turns) for i in range(64)]

    def setup(self, task):
        return task.instruction

    def transition(self, action):
        time.sleep(self.sleep_s)
        return Outcome("ok", terminated=self.turn + 1 >= self.turns, success=True)


SLEEP_ENV = agentgym.register("Sleep200-bench-v0", Sleep200)


def episodes_per_s(pool, policy, specs, sampling, options, repeats):
    """Best of `repeats` timed runs (after the workers are up)."""
    rates = []
    for _ in range(repeats):
        stats = RolloutStats()
        trajs = pool.run(policy, specs, sampling, options, stats=stats)
        assert all(t.end_reason != "aborted" for t in trajs), [t.error for t in trajs if t.error][:1]
        rates.append(stats.episodes_per_s)
    return max(rates), statistics.median(rates)


def scaling(tokenizer, quick: bool) -> None:
    turns = 2 if quick else 3
    per_worker = 2
    policy = ScriptedPolicy(tokenizer, lambda msgs: "ok")
    sampling = SamplingParams(8)
    options = RolloutOptions(max_new_tokens=8)
    print(
        f"\n1. Ray env workers on Sleep200-bench-v0 (step = 200 ms, {turns} steps an episode, "
        f"{per_worker} envs per worker; scripted policy)"
    )
    print(f"{'workers':>8} {'episodes':>9} {'episodes/s':>11} {'speed-up':>9} {'x linear':>9}")
    base = None
    for n in (1, 2, 4, 8):
        episodes = (4 if quick else 8) * n * per_worker
        specs = [EpisodeSpec(f"test-{i % 64}", turns, sample=i) for i in range(episodes)]
        maker = env_maker(SLEEP_ENV, turns=turns)
        with RolloutPool(
            maker, SLEEP_ENV, backend="ray", num_workers=n, envs_per_worker=per_worker, max_concurrent=n * per_worker
        ) as pool:
            best, _ = episodes_per_s(pool, policy, specs, sampling, options, repeats=1)
        base = base or best
        print(f"{n:>8} {episodes:>9} {best:>11.2f} {best / base:>9.2f} {best / base / n:>9.2f}")
    ideal = 1 / (turns * 0.2)
    print(f"(one worker's ceiling: {ideal:.2f} episodes/s: its envs share one thread, so their steps queue)")


def overhead(tokenizer, quick: bool) -> None:
    env_id = "agentgym/GuessNumber-16-v0"
    tasks = gymnasium.make(env_id).unwrapped.tasks("test")
    n = 256 if quick else 512
    specs = [EpisodeSpec(tasks[i % len(tasks)].id, 8, sample=i) for i in range(n)]
    policy = ScriptedPolicy(tokenizer, BisectionOracle(16))
    sampling, options = SamplingParams(16), RolloutOptions(max_new_tokens=16)
    repeats = 3 if quick else 5
    print(f"\n2. Ray backend overhead on a fast env ({env_id}, bisection oracle, {n} episodes, 64 in flight)")
    pools = {
        "local": RolloutPool(env_maker(env_id), env_id, backend="local", max_concurrent=64),
        "ray": RolloutPool(env_maker(env_id), env_id, backend="ray", num_workers=2, max_concurrent=64),
    }
    rates: dict[str, list[float]] = {name: [] for name in pools}
    try:
        for p in pools.values():
            p.run(policy, specs[:64], sampling, options)  # warm-up: envs built, caches filled
        # Alternate the backends so that load from other processes hits both alike.
        for _ in range(repeats):
            for name, p in pools.items():
                stats = RolloutStats()
                p.run(policy, specs, sampling, options, stats=stats)
                rates[name].append(stats.episodes_per_s)
    finally:
        for p in pools.values():
            p.close()
    for name, r in rates.items():
        print(f"{name:>6}: {max(r):8.1f} episodes/s (best of {repeats}; median {statistics.median(r):.1f})")
    best = max(rates["local"]) / max(rates["ray"]) - 1
    median = statistics.median(rates["local"]) / statistics.median(rates["ray"]) - 1
    print(f"overhead of ray over local: {best:+.1%} best vs best, {median:+.1%} median vs median (goal <= +10%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer episodes and turns (~1 minute)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    tokenizer = load_tokenizer("smollm2-135m")
    init_ray(num_cpus=os.cpu_count(), log_to_driver=False)  # 127.0.0.1 only
    try:
        print(f"Ray {ray.__version__}, {os.cpu_count()} CPU cores")
        scaling(tokenizer, args.quick)
        overhead(tokenizer, args.quick)
    finally:
        ray.shutdown()
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")

    print(load_line())


if __name__ == "__main__":
    main()
