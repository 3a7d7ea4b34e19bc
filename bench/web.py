"""Benchmark of the web envs: per-action latency against the bare-Playwright floor.

Every env action is timed from `env.step` to its observation (the outline included), so
the figures are what an agent loop sees. The *floor* is the same action done with bare
Playwright on the same pages, in the same run: next to each episode, a plain browser
context (same browser, a session and database of its own, no routes or init scripts)
replays it, and each of the oracle's actions costs there the Playwright call alone
(`click(force=True)` on the same element, `fill` (+ `press("Enter")`), `select_option`,
`goto`, `go_back`, a `scrollBy`) plus `page.aria_snapshot(mode="ai")`, after the one
`evaluate` that waits for the page to settle (the apps update pages in place: without it
the snapshot would show the page before the click). The env and the
floor run the two step by step, alternating, so load from other processes hits both
alike. "server ms" is a plain HTTP GET of the start page without the browser: the app's
own share of an action.

WebDatasette-v0 runs Datasette, started by the env; its "server ms" is Datasette's own
answer to a GET of the table page.

Goals (issue 15): env p50 <= 1.2 x the floor's p50, env p95 <= 150 ms, and the oracle
solves every task in its min_turns. Run from the repository root:

    .venv/bin/python bench/web.py            # 12 test tasks per env
    .venv/bin/python bench/web.py --quick    # 4 test tasks per env
    .venv/bin/python bench/web.py --env agentgym/WebDatasette-v0
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time

from agentgym.envs.web.browser import SETTLE, shared_browser
from agentgym.envs.web.oracle import WebOracle
from agentgym.envs.web.server import SESSION_HEADER, get_server
from goals import goal, load_line

from agentgym.registration import make

#: The built-in apps, and Datasette (a third-party app the env starts; its extra: agentgym[datasette]).
ENVS = ("agentgym/WebShop-v0", "agentgym/WebTracker-v0", "agentgym/WebDatasette-v0")
GOAL_RATIO = 1.2
GOAL_P95_MS = 150.0
_CALL = re.compile(r"<tool_call>(.*)</tool_call>", re.S)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Floor:
    """One episode replayed with bare Playwright: a plain context, the action, `aria_snapshot`."""

    def __init__(self, env, start_path: str) -> None:
        if hasattr(env, "site_cfg"):  # a SiteEnv: the site the env runs (read-only: shared as it is)
            self.origin, self.token, headers = env.tab.origin, None, {}
        else:
            server = get_server()
            self.origin = server.origin
            self.token, _ = server.open_session(env.app, env.data_seed)
            headers = {SESSION_HEADER: self.token}
        self.context = shared_browser().new_context(extra_http_headers=headers, viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.goto(self.origin + start_path)
        self.tree = self.page.aria_snapshot(mode="ai")

    def act(self, call: dict) -> float:
        """Do one tool call the Playwright way; its seconds, snapshot included."""
        name, args, page = call["name"], call["arguments"], self.page
        t0 = time.perf_counter()
        if name == "click":
            page.locator(f"aria-ref={args['ref']}").click(force=True)
        elif name == "type":
            element = page.locator(f"aria-ref={args['ref']}")
            element.fill(args["text"])
            if args.get("submit"):
                element.press("Enter")
        elif name == "select":
            page.locator(f"aria-ref={args['ref']}").select_option(label=args["option"])
        elif name == "goto":
            page.goto(self.origin + args["url"])
        elif name == "back":
            page.go_back()
        elif name == "scroll":
            page.evaluate(f"window.scrollBy(0, {1 if args['direction'] == 'down' else -1} * window.innerHeight * 0.8)")
        else:
            raise ValueError(f"the floor has no Playwright equivalent of {name!r}")
        page.evaluate(SETTLE)  # an in-page update ends after the click returns: wait for it, as the env does
        self.tree = page.aria_snapshot(mode="ai")
        return time.perf_counter() - t0

    def close(self) -> None:
        self.context.close()
        if self.token is not None:
            get_server().close_session(self.token)


def _call(action: str) -> dict | None:
    m = _CALL.search(action)
    return json.loads(m.group(1)) if m else None


def run(env_id: str, episodes: int) -> dict[str, float]:
    env = make(env_id)
    web = env.unwrapped
    tasks = web.tasks("test")
    # A spread of templates: every k-th task of the (template-grouped) test split.
    picked = tasks[:: max(1, len(tasks) // episodes)][:episodes]

    def start(task) -> str:
        return task.metadata.get("start", web.start_path)

    env.reset(options={"task_id": picked[0].id})  # warm up: browser launch and seed database
    Floor(web, start(picked[0])).close()
    step_times: list[float] = []
    floor_times: list[float] = []
    reset_times: list[float] = []
    solved = in_min_turns = 0
    began = time.perf_counter()
    for task in picked:
        t0 = time.perf_counter()
        obs, info = env.reset(options={"task_id": task.id})
        reset_times.append(time.perf_counter() - t0)
        floor = Floor(web, start(task))
        oracle, floor_oracle = WebOracle(task), WebOracle(task)
        done = truncated = False
        while not (done or truncated):
            action = oracle.act(obs)
            t0 = time.perf_counter()
            obs, _, done, truncated, info = env.step(action)
            if action.startswith("<answer>"):  # answers touch no browser
                continue
            step_times.append(time.perf_counter() - t0)
            call = _call(action)
            if call["name"] != "scroll":  # the floor sees the whole outline: its refs are its own
                call = _call(floor_oracle.act(floor.tree))
            if call is None:
                raise RuntimeError(f"{task.id}: the floor's replay lost its way (its oracle answered)")
            floor_times.append(floor.act(call))
        floor.close()
        solved += bool(info["success"])
        in_min_turns += bool(info["success"]) and info["turn"] <= task.min_turns
    elapsed = time.perf_counter() - began
    server_ms = server_latency(web, start(picked[0]))
    env.close()
    return {
        "episodes": len(picked),
        "solved": solved,
        "in_min_turns": in_min_turns,
        "actions": len(step_times),
        "p50_ms": 1000 * statistics.median(step_times),
        "p95_ms": 1000 * percentile(step_times, 0.95),
        "floor_p50_ms": 1000 * statistics.median(floor_times),
        "floor_p95_ms": 1000 * percentile(floor_times, 0.95),
        "reset_ms": 1000 * statistics.median(reset_times),
        "episodes_per_min": 60 * len(picked) / elapsed,
        "server_ms": server_ms,
    }


def server_latency(env, path: str, n: int = 30) -> float:
    """p50 of a plain HTTP GET of the start page (no browser): the app's share of an action."""
    import http.client
    import urllib.parse

    site = hasattr(env, "site_cfg")
    origin = urllib.parse.urlsplit(env.tab.origin if site else get_server().origin)
    headers = {} if site else {SESSION_HEADER: env.token}
    conn = http.client.HTTPConnection(origin.hostname, origin.port)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
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
    parser.add_argument("--env", action="append", choices=ENVS, help="only this env (repeatable; default: all)")
    args = parser.parse_args()
    episodes = args.episodes or (4 if args.quick else 12)
    print(f"at start: {load_line()}")
    print(
        f"{'env':24} {'solved':>7} {'in min':>7} {'actions':>7} {'p50 ms':>7} {'floor':>7} {'ratio':>6} "
        f"{'p95 ms':>7} {'floor':>7} {'reset ms':>8} {'ep/min':>6} {'server ms':>9}"
    )
    verdicts = []
    for env_id in args.env or ENVS:
        r = run(env_id, episodes)
        ratio = r["p50_ms"] / r["floor_p50_ms"]
        print(
            f"{env_id:24} {r['solved']:>3}/{r['episodes']:<3} {r['in_min_turns']:>3}/{r['episodes']:<3} "
            f"{r['actions']:>7} {r['p50_ms']:>7.1f} {r['floor_p50_ms']:>7.1f} {ratio:>6.2f} {r['p95_ms']:>7.1f} "
            f"{r['floor_p95_ms']:>7.1f} {r['reset_ms']:>8.1f} {r['episodes_per_min']:>6.1f} {r['server_ms']:>9.2f}"
        )
        verdicts += [
            goal(f"{env_id} p50 / floor p50 (the same Playwright action + aria_snapshot)", ratio, GOAL_RATIO, False),
            goal(f"{env_id} p95", r["p95_ms"], GOAL_P95_MS, False, " ms"),
            goal(f"{env_id} tasks solved in their min_turns", r["in_min_turns"] / r["episodes"], 1.0),
        ]
    print("\n".join(verdicts))
    print(f"at end: {load_line()}")


if __name__ == "__main__":
    main()
