"""Benchmark of the web envs: per-action latency and episodes per minute under the oracle.

Every action is timed from `env.step` to its observation (the outline included), so the
figures are what an agent loop sees. "server ms" is a plain HTTP GET of the start page
without the browser: the app's own share of an action. Run from the repository root:

    .venv/bin/python bench/web.py            # 12 test tasks per env
    .venv/bin/python bench/web.py --quick    # 4 test tasks per env
"""

from __future__ import annotations

import argparse
import statistics
import time

from agentgym.envs.web.oracle import WebOracle

from agentgym.registration import make

ENVS = ("agentgym/WebShop-v0", "agentgym/WebTracker-v0")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(env_id: str, episodes: int) -> dict[str, float]:
    env = make(env_id)
    tasks = env.unwrapped.tasks("test")
    # A spread of templates: every k-th task of the (template-grouped) test split.
    picked = tasks[:: max(1, len(tasks) // episodes)][:episodes]
    env.reset(options={"task_id": picked[0].id})  # warm up: browser launch and seed database
    step_times: list[float] = []
    reset_times: list[float] = []
    solved = 0
    start = time.perf_counter()
    for task in picked:
        t0 = time.perf_counter()
        obs, info = env.reset(options={"task_id": task.id})
        reset_times.append(time.perf_counter() - t0)
        oracle = WebOracle(task)
        done = truncated = False
        while not (done or truncated):
            action = oracle.act(obs)
            t0 = time.perf_counter()
            obs, _, done, truncated, info = env.step(action)
            if not action.startswith("<answer>"):  # answers touch no browser
                step_times.append(time.perf_counter() - t0)
        solved += bool(info["success"])
    elapsed = time.perf_counter() - start
    server_ms = server_latency(env.unwrapped, env.unwrapped.start_path)
    env.close()
    return {
        "episodes": len(picked),
        "solved": solved,
        "actions": len(step_times),
        "p50_ms": 1000 * statistics.median(step_times),
        "p95_ms": 1000 * percentile(step_times, 0.95),
        "reset_ms": 1000 * statistics.median(reset_times),
        "episodes_per_min": 60 * len(picked) / elapsed,
        "server_ms": server_ms,
    }


def server_latency(env, path: str, n: int = 30) -> float:
    """p50 of a plain HTTP GET of the start page (no browser): the app's share of an action."""
    import http.client
    import urllib.parse

    from agentgym.envs.web.server import SESSION_HEADER, get_server

    origin = urllib.parse.urlsplit(get_server().origin)
    conn = http.client.HTTPConnection(origin.hostname, origin.port)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path, headers={SESSION_HEADER: env.token})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        times.append(time.perf_counter() - t0)
    conn.close()
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 episodes per env instead of 12")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per env (overrides --quick)")
    args = parser.parse_args()
    episodes = args.episodes or (4 if args.quick else 12)
    print(
        f"{'env':24} {'solved':>8} {'actions':>8} {'p50 ms':>8} {'p95 ms':>8} {'reset ms':>9} {'ep/min':>7} "
        f"{'server ms':>9}"
    )
    for env_id in ENVS:
        r = run(env_id, episodes)
        print(
            f"{env_id:24} {r['solved']:>4}/{r['episodes']:<3} {r['actions']:>8} {r['p50_ms']:>8.1f} "
            f"{r['p95_ms']:>8.1f} {r['reset_ms']:>9.1f} {r['episodes_per_min']:>7.1f} {r['server_ms']:>9.2f}"
        )


if __name__ == "__main__":
    main()
