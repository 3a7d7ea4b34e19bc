"""Replay the gold actions of every tool-calling task and print how many score 1.0.

    python bench/tools.py            # BFCL (needs bfcl-eval) and Retail
    python bench/tools.py --retail   # Retail only

For BFCL it prints, per category, the tasks that load, the tasks whose ground-truth
replay scores 1.0 with and without argument-type validation, the tasks a policy that
calls nothing wins (must be 0), and the time per episode; for Retail the same per
template (the no-op policy replies at once without calling a tool).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from goals import load_line


def play(env, task, actions) -> float:
    env.reset(options={"task_id": task.id})
    total = 0.0
    for action in actions:
        _, reward, terminated, truncated, _ = env.step(action)
        total += reward
        if terminated or truncated:
            break
    return total


def bench_bfcl() -> None:
    from agentgym.envs.tools.bfcl.data import CATEGORIES
    from agentgym.envs.tools.bfcl.env import BFCLMultiTurnEnv
    from agentgym.envs.tools.bfcl.tasks import end_turn_action, gold_actions

    print(
        f"{'BFCL category':<14} {'loaded':>6} {'replay=1':>9} {'(no types)':>10} {'no-op=1':>8} {'ms/ep':>6}  failing"
    )
    totals = Counter()
    for category in CATEGORIES:
        strict = BFCLMultiTurnEnv(categories=category)
        lax = BFCLMultiTurnEnv(categories=category, validate_types=False)
        tasks = strict.tasks("test")
        start = time.perf_counter()
        wins = [t.id for t in tasks if play(strict, t, gold_actions(t)) == 1.0]
        elapsed = time.perf_counter() - start
        lax_wins = [t.id for t in tasks if play(lax, t, gold_actions(t)) == 1.0]
        noop = sum(play(strict, t, [end_turn_action()] * len(t.metadata["entry"].questions)) for t in tasks)
        failing = sorted({t.id for t in tasks} - set(wins))
        row = (len(tasks), len(wins), len(lax_wins), int(noop))
        totals.update(dict(zip(("loaded", "wins", "lax", "noop"), row, strict=True)))
        print(
            f"{category:<14} {row[0]:>6} {row[1]:>9} {row[2]:>10} {row[3]:>8} {1000 * elapsed / len(tasks):>6.1f}  {failing}"
        )
    print(f"{'total':<14} {totals['loaded']:>6} {totals['wins']:>9} {totals['lax']:>10} {totals['noop']:>8}")


def bench_retail() -> None:
    from agentgym.envs.tools.retail.env import RetailEnv
    from agentgym.envs.tools.retail.tasks import TEMPLATES, gold_actions

    env = RetailEnv()
    tasks = env.tasks("train") + env.tasks("test")
    print(f"\n{'Retail template':<16} {'tasks':>5} {'replay=1':>9} {'no-op=1':>8} {'ms/ep':>6}")
    for template in TEMPLATES:
        chosen = [t for t in tasks if t.metadata["template"] == template]
        start = time.perf_counter()
        wins = sum(play(env, t, gold_actions(t)) for t in chosen)
        elapsed = time.perf_counter() - start
        noop = sum(play(env, t, ["<answer>Sorry, I cannot help with that.</answer>"]) for t in chosen)
        print(f"{template:<16} {len(chosen):>5} {int(wins):>9} {int(noop):>8} {1000 * elapsed / len(chosen):>6.1f}")
    env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retail", action="store_true", help="only the Retail tasks")
    args = parser.parse_args()
    if not args.retail:
        bench_bfcl()
    bench_retail()
    print(load_line())


if __name__ == "__main__":
    main()
