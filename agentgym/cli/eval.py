"""`agentgym eval CONFIG [key=value ...]`: success vs interaction turns.

Evaluates a policy on an env's test split at several turn budgets and writes
results.json, results.csv, success_vs_turns.png and trajectories.jsonl.

    agentgym eval configs/quickstart_eval.yaml
    agentgym eval configs/quickstart_eval.yaml policy.model=HuggingFaceTB/SmolLM2-360M-Instruct horizons=[1,2,4,8]
    agentgym eval --compare runs/eval-a runs/eval-b --output compare.png
    agentgym eval --help-config
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentgym.cli.common import config_from_args
from agentgym.config import EvalConfig, config_help, load_config


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "eval",
        help="evaluate success vs interaction turns",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="YAML config (see configs/); omitted: all defaults")
    p.add_argument(
        "overrides", nargs="*", help="key.sub=value overrides, e.g. horizons=[1,2,4] policy.model=tiny-random"
    )
    p.add_argument("--compare", nargs="+", metavar="DIR", help="overlay the results in these folders in one plot")
    p.add_argument("--output", default="compare.png", help="plot path for --compare")
    p.add_argument("--help-config", action="store_true", help="list every config key with its type, default and help")
    return p


def _print_table(summary: dict) -> None:
    rows = summary["horizons"]
    k = max((int(key.split("@")[1]) for key in rows[0] if key.startswith("pass@")), default=1)
    print(
        f"\n{summary['label']} on {summary['env']} ({summary['tasks']} tasks x {summary['samples_per_task']} samples, {summary['sweep']} sweep)"
    )
    aborted = any(r.get("aborted") for r in rows)
    extra = f" {'abort=fail':>10} {'aborted':>7}" if aborted else ""
    print(
        f"{'h':>4} {'success':>8} {'95% CI':>15}{extra} {f'pass@{k}':>8} {'turns':>6} {'cap hit':>8} {'invalid':>8} {'tokens':>7} {'tools':>6}"
    )
    for r in rows:
        ci = f"[{r['success_ci_low']:.2f}, {r['success_ci_high']:.2f}]"
        extra = f" {r['success_aborted_as_failure']:>10.3f} {r['aborted']:>7}" if aborted else ""
        print(
            f"{r['horizon']:>4} {r['success']:>8.3f} {ci:>15}{extra} {r.get(f'pass@{k}', float('nan')):>8.3f} {r['mean_turns']:>6.2f} "
            f"{r['cap_hit_rate']:>8.2f} {r['invalid_action_rate']:>8.2f} {r['tokens_per_episode']:>7.1f} {r['tool_calls_per_episode']:>6.2f}"
        )
    if aborted:
        print(
            "success: over the episodes that were not aborted; abort=fail: aborted episodes (env or infrastructure "
            "failures) counted as failures"
        )
    t = summary["throughput"]
    print(
        f"{t['episodes']} episodes in {t['seconds']} s: {t['episodes_per_s']} episodes/s, {t['generated_tokens_per_s']} generated tokens/s"
    )
    kv = summary.get("task_accuracy_by_step")
    if kv:
        print(f"task accuracy by step: H_0.5={kv['H_0.5']} H_0.8={kv['H_0.8']} step accuracy={kv['step_accuracy']:.3f}")
    if "fit" in summary:
        print(_fit_line(summary["fit"]))


def _fit_line(fit: dict) -> str:
    """The success-curve fit (`agentgym.eval.fits`) in one line; a None (null) is infinite."""
    if "error" in fit:
        return f"fit of success vs h: none ({fit['error']})"

    def show(name: str, v: dict) -> str:
        fmt = [f"{x:.3g}" if x is not None else "inf" for x in (v["value"], v["low"], v["high"])]
        return f"{name} {fmt[0]} [{fmt[1]}, {fmt[2]}]"

    names = (("A", "asymptote"), ("k", "slope"), ("midpoint", "midpoint"), ("h50", "h50"))
    return "fit A / (1 + exp(-k (ln h - m))), 95% intervals: " + ", ".join(show(n, fit[key]) for n, key in names)


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print("\n".join(config_help(EvalConfig)))
        return 0
    if args.compare:
        from agentgym.eval.plots import plot_curves

        results = []
        for folder in args.compare:
            path = Path(folder) / "results.json"
            if not path.exists():
                print(
                    f"error: {path} does not exist (run agentgym eval with output_dir={folder} first)", file=sys.stderr
                )
                return 2
            try:
                results.append(json.loads(path.read_text()))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                print(f"error: {path} cannot be read as results ({exc}); rerun agentgym eval there", file=sys.stderr)
                return 2
        out = plot_curves(results, args.output, title="Success vs interaction turns")
        for res in results:
            _print_table(res)
        print(f"\nplot: {out}")
        return 0
    cfg = config_from_args(args, lambda path, overrides: load_config(path, EvalConfig, overrides))
    from agentgym.eval import evaluate

    result = evaluate(cfg)
    _print_table(result.summary)
    print(f"\nresults: {result.output_dir / 'results.json'}, {result.output_dir / 'results.csv'}")
    print(f"plot:    {result.output_dir / 'success_vs_turns.png'}")
    return 0
