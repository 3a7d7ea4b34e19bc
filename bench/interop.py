"""The cost of the interoperability routes: an env step through OpenEnv (`agentgym serve`
and OpenEnv's own client) against the same step in process, in the same run; and an MCP
tool call (mcp-server-git through the mcp SDK over stdio, as MCPGit-v0 makes it), alone
and as an env step, with the server's start per episode.

The server runs in a process of its own, as a user runs it; the client steps GuessNumber
episodes with bisection replies (a fast env, so the figure is the route's own overhead),
first in process, then over the WebSocket session, alternating per episode.

    python bench/interop.py                  # 200 episodes
    python bench/interop.py --episodes 50
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

import gymnasium
from goals import load_line

ENV = "agentgym/GuessNumber-16-v0"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--calls", type=int, default=200, help="MCP tool calls per figure")
    args = p.parse_args()
    from agentgym.envs.guess_number.oracle import BisectionOracle
    from openenv.core.generic_client import GenericEnvClient

    print(f"at start: {load_line()}")
    server = subprocess.Popen([sys.executable, "-m", "agentgym.cli", "serve", ENV], stdout=subprocess.PIPE, text=True)
    url = re.search(r"http://127\.0\.0\.1:\d+", server.stdout.readline()).group(0)
    env = gymnasium.make(ENV)
    tasks = env.unwrapped.tasks("train")
    local, remote, resets = [], [], []
    try:
        time.sleep(1.0)
        with GenericEnvClient(base_url=url).sync() as client:
            for k in range(args.episodes):
                task = tasks[k % len(tasks)]
                # In process: the actions bisection takes, timed step by step.
                oracle = BisectionOracle(16)
                obs, _ = env.reset(options={"task_id": task.id})
                messages = [{"role": "system", "content": ""}, {"role": "user", "content": obs}]
                actions, done = [], False
                while not done:
                    action = oracle.respond(messages)
                    t0 = time.perf_counter()
                    obs, _, terminated, truncated, _ = env.step(action)
                    local.append(time.perf_counter() - t0)
                    messages += [{"role": "assistant", "content": action}, {"role": "user", "content": obs}]
                    actions.append(action)
                    done = terminated or truncated
                # Over OpenEnv: the same actions.
                t0 = time.perf_counter()
                client.reset(task_id=task.id)
                resets.append(time.perf_counter() - t0)
                for action in actions:
                    t0 = time.perf_counter()
                    client.step({"text": action})
                    remote.append(time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait(10)
    ms = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    p95 = lambda xs: 1000 * sorted(xs)[int(0.95 * len(xs))]  # noqa: E731
    print(f"{args.episodes} episodes, {len(local)} steps each way")
    print(f"in process:   step p50 {ms(local):.3f} ms, p95 {p95(local):.3f} ms")
    print(f"over OpenEnv: step p50 {ms(remote):.3f} ms, p95 {p95(remote):.3f} ms; reset p50 {ms(resets):.3f} ms")
    print(f"OpenEnv's per-step overhead: {ms(remote) - ms(local):.3f} ms at the median ({ms(remote) / ms(local):.0f}x)")
    mcp_calls(args.calls)
    print(f"at end: {load_line()}")


def mcp_calls(n: int) -> None:
    """p50 of an MCP tool call (git_status, git_log) on mcp-server-git, of the same call as an
    MCPGit-v0 step (parsing and formatting included), and of starting the server."""
    import json

    from agentgym.envs.mcp.env import MCPConnection
    from agentgym.envs.mcp.git import GitMCPEnv

    env = GitMCPEnv()
    task = env.tasks("test")[0]
    starts = []
    for _ in range(5):
        t0 = time.perf_counter()
        env.reset(options={"task_id": task.id})
        starts.append(time.perf_counter() - t0)
    repo = str(env.repo)
    conn: MCPConnection = env.connection
    raw = {"git_status": [], "git_log": []}
    for name in raw:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.call(name, {"repo_path": repo}, 30)
            raw[name].append(time.perf_counter() - t0)
    action = "<tool_call>" + json.dumps({"name": "git_status", "arguments": {"repo_path": repo}}) + "</tool_call>"
    steps = []
    for _ in range(n):
        env.unwrapped.turn = 0  # keep the episode open: the budget is not what is measured
        t0 = time.perf_counter()
        env.step(action)
        steps.append(time.perf_counter() - t0)
    env.close()
    ms = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    print(f"MCP (mcp-server-git over stdio, {n} calls each): git_status p50 {ms(raw['git_status']):.2f} ms, "
          f"git_log p50 {ms(raw['git_log']):.2f} ms; as an MCPGit-v0 step {ms(steps):.2f} ms; "
          f"reset (a new repository and server) p50 {ms(starts):.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
