"""`agentgym view` on a trajectory file of 100,000 episodes: does it open in under 3 s and
stay responsive?

Real trajectories (an evaluation of GuessNumber-16 played by bisection with a mistake now
and then, through the real env, rollout and tokenizer; or a file of your own with
--source) are replicated to N episodes (task ids and samples made distinct). Measured:

- the baseline: parsing every line of the file once (`json.loads`, nothing kept: the least
  a viewer without an index pays on every open; `load_trajectories` pays more);
- indexing it the first time (once per file version; cached in $AGENTGYM_CACHE/view);
- opening it with the index cached: a fresh `agentgym view FILE` process, from its start
  to the first episode table received (imports, server start, index load, the page);
- responsiveness: the table filtered and sorted, paging far in, one episode and its
  tokens, each the median of several requests.

    python bench/view.py                      # 100,000 episodes
    python bench/view.py --episodes 20000     # a quick look
    python bench/view.py --source runs/eval/trajectories.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from goals import goal, load_line


def real_trajectories(folder: Path) -> Path:
    """An evaluation's trajectories.jsonl: GuessNumber-16, 32 tasks x 2 samples, horizons
    up to 8, played by bisection that wastes its first turn on every third episode."""
    import itertools

    from agentgym.envs.guess_number.oracle import BisectionOracle

    from agentgym.config import EvalConfig, load_config
    from agentgym.eval import evaluate
    from agentgym.policy import ScriptedPolicy, load_tokenizer

    oracle, starts = BisectionOracle(16), itertools.count()

    def agent(msgs: list[dict]) -> str:
        if not any(m["role"] == "assistant" for m in msgs) and next(starts) % 3 == 0:
            return "I am not sure yet."
        return f"My guess: {oracle.respond(msgs)}"

    cfg = load_config(
        None,
        EvalConfig,
        [f"output_dir={folder}", "env.num_tasks=32", "samples_per_task=2", "horizons=[1,2,4,8]", "progress=false"],
    )
    evaluate(cfg, ScriptedPolicy(load_tokenizer("smollm2-135m"), agent))
    return folder / "trajectories.jsonl"


def replicate(source: Path, target: Path, episodes: int) -> int:
    lines = [ln for ln in source.read_text().splitlines() if ln.strip()]
    with open(target, "w") as fh:
        for i in range(episodes):
            row = json.loads(lines[i % len(lines)])
            row["task_id"] = f"{row['task_id']}-r{i // len(lines)}"
            fh.write(json.dumps(row) + "\n")
    return target.stat().st_size


def fetch(url: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read().decode()
    return time.perf_counter() - t0, body


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=100_000)
    p.add_argument("--source", type=Path, help="a trajectory file to replicate (default: a fresh evaluation)")
    p.add_argument("--repeats", type=int, default=7, help="requests per responsiveness figure")
    args = p.parse_args()
    from agentgym.view import EpisodeIndex

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "index-cache"
        source = args.source or real_trajectories(tmp / "eval")
        big = tmp / "run" / "trajectories.jsonl"
        big.parent.mkdir()
        size = replicate(source, big, args.episodes)
        if (source.parent / "results.json").exists():  # the run's config: the token view decodes with its tokenizer
            shutil.copy(source.parent / "results.json", big.parent / "results.json")
        print(f"{args.episodes} episodes replicated from {source.name}: {size / 1e6:.0f} MB", flush=True)

        t0 = time.perf_counter()
        with open(big, "rb") as fh:
            for raw in fh:
                json.loads(raw)
        parse_s = time.perf_counter() - t0
        print(f"baseline: parsing every line once (json.loads): {parse_s:.1f} s", flush=True)

        t0 = time.perf_counter()
        index = EpisodeIndex.open(big, cache)
        build_s = time.perf_counter() - t0
        cached = next(cache.glob("*.npz"))
        print(f"indexing it once: {build_s:.1f} s; the index: {cached.stat().st_size / 1e6:.1f} MB", flush=True)
        assert len(index) == args.episodes

        # A fresh process, as a user starts it: from the command to the first table received.
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentgym.cli", "view", str(big.parent), "--cache", str(cache)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline()
            url = re.search(r"http://[\d.]+:\d+/", line).group(0) + "r/0/trajectories.jsonl"
            first, html = fetch(url)
            open_s = time.perf_counter() - t0
            assert f"{args.episodes} episodes" in html, html[:500]
            print(f"open with the index cached (process start to the first table): {open_s:.2f} s "
                  f"(the page itself {first:.2f} s)", flush=True)  # fmt: skip
            pages = {
                "table, filtered and sorted": "?success=no&sort=-tokens",
                "table, a task filter": "?task=r77&sort=turns",
                "table, the last page": f"?page={args.episodes // 50 - 1}",
                "one episode": "?episode=54321",
                "its tokens": "?episode=54321&view=tokens",
            }
            for label, query in pages.items():
                times = [fetch(url + query)[0] for _ in range(args.repeats)]
                print(f"  {label}: median {statistics.median(times) * 1000:.0f} ms over {args.repeats}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    print(goal("open a 100,000-episode file (index cached)", open_s, 3.0, at_least=False, unit=" s"))
    print(f"index vs parsing the file: {parse_s / open_s:.0f}x faster to open; {load_line()}")


if __name__ == "__main__":
    main()
