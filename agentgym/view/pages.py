"""The viewer's pages as HTML strings: what every page shares (escaping, the frame, the
style), the runs page and a run's page. The episode pages are in `episodes.py`.

Everything a run or a model wrote is escaped before it is put in a page (`e`); the pages
carry no script at all, so a reply that contains `<script>` is text and nothing runs.
Filters, sorting and paging are plain links and GET forms, so every view has a URL.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from agentgym.view.sources import Roots, Run
from agentgym.view.svg import Series, line_chart

__all__ = ["e", "home_page", "num", "page", "query_link", "run_page"]

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#222}
header{border-bottom:1px solid #ddd;padding:10px 0;margin-bottom:12px}
header a{margin-right:12px}
a{color:#1f5fa8;text-decoration:none} a:hover{text-decoration:underline}
table{border-collapse:collapse} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
th a{color:inherit} .num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:12px} .chart text{font-size:11px;fill:#333} .chart .title{font-size:13px}
.msg{border:1px solid #ddd;border-radius:6px;margin:8px 0;padding:6px 10px}
.msg pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;font:13px/1.4 ui-monospace,monospace}
.role{font-weight:600;font-size:12px;color:#555} .system{background:#f6f6f6} .user{background:#f3f8ff}
.assistant{background:#f4fbf2} .summary{background:#fff7e0;border-color:#e0b840}
.boundary{border-top:3px dashed #e0b840;margin:14px 0 4px;color:#8a6d10;font-size:12px}
.badge{display:inline-block;border-radius:4px;padding:0 6px;margin-left:6px;font-size:12px;background:#eee}
.success{background:#d8f0d2} .failure,.aborted{background:#f8d7d7} .over_turn,.overlong{background:#fbe8c8}
.error{background:#fde2e2;border:1px solid #e99;padding:8px;white-space:pre-wrap}
.tokens span{white-space:pre-wrap;font:12px/1.9 ui-monospace,monospace;border-radius:2px;padding:1px 0}
.tokens .p{color:#888} .tokens .e{background:#eef2f7} .tokens .g{outline:1px solid #4a4}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:16px}
form.filters{margin:8px 0} form.filters input,form.filters select{margin-right:8px}
.call{font:12px ui-monospace,monospace;color:#1f5fa8;margin-top:2px}
.info{font:12px ui-monospace,monospace;color:#555;margin-top:2px;word-break:break-word}
dl.meta{display:grid;grid-template-columns:repeat(4,max-content minmax(110px,auto));gap:2px 12px;margin:8px 0}
dl.meta dt{color:#666} dl.meta dd{margin:0} .cols dl.meta{grid-template-columns:repeat(2,max-content auto)}
details summary{cursor:pointer}
"""


def e(value: Any) -> str:
    """Escaped text for HTML (quotes included, for attributes)."""
    return escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    nav = '<header><a href="/">runs</a></header>'
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{e(title)} · agentgym view</title>'
        f"<style>{CSS}</style></head><body>{nav}<h1>{e(title)}</h1>{body}</body></html>"
    )


def query_link(base: dict[str, Any], **changes: Any) -> str:
    q = {k: v for k, v in {**base, **changes}.items() if v not in (None, "")}
    return "?" + urlencode(q)


def num(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "" if not math.isfinite(v) else f"{v:.3g}"
    return e(v)


# ---------------------------------------------------------------------- runs


def _success_series(label: str, results: dict[str, Any]) -> Series:
    rows = results.get("horizons") or []
    return Series(
        label,
        [r.get("horizon") for r in rows],
        [r.get("success") for r in rows],
        [r.get("success_ci_low") for r in rows],
        [r.get("success_ci_high") for r in rows],
    )


def _success_chart(series: list[Series], title: str = "success vs turns") -> str:
    return line_chart(series, title=title, xlabel="turn budget h", ylabel="success@h", y_range=(0.0, 1.0))


def home_page(roots: Roots, runs: list[Run], loose: list[Path]) -> str:
    evals = [r for r in runs if r.kind == "eval"]
    series = []
    for r in evals[:9]:
        results = r.results()
        if results:
            series.append(_success_series(_run_label(roots, r), results))
    body = [f'<div class="charts">{_success_chart(series, "success vs turns (runs overlaid)")}</div>'] if series else []
    body.append("<table><tr><th>run</th><th>kind</th><th>trajectory files</th><th>summary</th></tr>")
    for r in runs:
        files = ", ".join(f'<a href="{e(roots.url(p))}">{e(p.name)}</a>' for p in r.trajectories[:6])
        more = f" (+{len(r.trajectories) - 6})" if len(r.trajectories) > 6 else ""
        body.append(
            f'<tr><td><a href="{e(roots.url(r.path))}">{e(_run_label(roots, r))}</a></td><td>{e(r.kind)}</td>'
            f"<td>{files}{e(more)}</td><td>{_run_summary(r)}</td></tr>"
        )
    for p in loose:
        body.append(
            f'<tr><td><a href="{e(roots.url(p))}">{e(p.name)}</a></td><td>trajectories</td><td></td><td></td></tr>'
        )
    body.append("</table>")
    if not runs and not loose:
        body.append("<p>No runs or trajectory files found under the paths given.</p>")
    return page("agentgym runs", "".join(body))


def _run_label(roots: Roots, run: Run) -> str:
    return roots.label(run.path)


def _run_summary(run: Run) -> str:
    if run.kind == "eval":
        results = run.results() or {}
        rows = results.get("horizons") or []
        if rows:
            last = rows[-1]
            return e(f"{results.get('env', '')}: success@{last.get('horizon')} = {num(last.get('success'))}")
    if run.kind == "train":
        m = [r for r in run.metrics() if "reward_mean" in r]
        if m:
            return e(f"{len(m)} steps, last reward {num(m[-1]['reward_mean'])}")
    if run.kind == "experiment":
        return e(f"{len({r['arm'] for r in run.experiment_rows()})} arms")
    return ""


def run_page(roots: Roots, run: Run) -> str:
    body = [f"<p>{e(run.kind)} run at <code>{e(run.path)}</code></p>"]
    charts = []
    if run.kind == "eval":
        results = run.results() or {}
        charts.append(_success_chart([_success_series("success", results)]))
        body.append(_results_table(results))
    if run.kind == "train":
        records = [r for r in run.metrics() if "reward_mean" in r and "eval_at" not in r]
        steps = [r.get("step") for r in records]
        for key, label in (
            ("reward_mean", "reward"),
            ("success_rate", "success"),
            ("invalid_action_rate", "invalid actions"),
            ("horizon", "horizon"),
        ):
            charts.append(line_chart([Series(label, steps, [r.get(key) for r in records])], title=label, xlabel="step"))
        series = []
        for folder in run.evals[-9:]:
            results = _results_of(folder)
            if results:
                series.append(_success_series(folder.name, results))
        if series:
            charts.insert(0, _success_chart(series, "evaluations: success vs turns"))
        if run.evals:
            body.append(
                "<p>Evaluations: "
                + ", ".join(f'<a href="{e(roots.url(f))}">{e(f.name)}</a>' for f in run.evals)
                + "</p>"
            )
    if run.kind == "experiment":
        rows = run.experiment_rows()
        end = max((float(r["point"]) for r in rows), default=1.0)
        series = []
        for arm in dict.fromkeys(r["arm"] for r in rows):
            by_h: dict[float, list[float]] = {}
            for r in rows:
                if r["arm"] == arm and float(r["point"]) == end:
                    by_h.setdefault(float(r["horizon"]), []).append(float(r["success"]))
            hs = sorted(by_h)
            series.append(Series(f"{arm} (mean of {len(by_h[hs[0]]) if hs else 0} seeds)", hs,
                                 [float(np.mean(by_h[h])) for h in hs]))  # fmt: skip
        charts.append(_success_chart(series, "success vs turns at the end of the budget"))
        if (run.path / "report.md").exists():
            body.append(f'<p><a href="{e(roots.url(run.path / "report.md"))}">report.md</a></p>')
    body.insert(1, f'<div class="charts">{"".join(charts)}</div>')
    if run.trajectories:
        body.append("<h2>Trajectory files</h2><ul>")
        body += [f'<li><a href="{e(roots.url(p))}">{e(p.relative_to(run.path))}</a></li>' for p in run.trajectories]
        body.append("</ul>")
    return page(_run_label(roots, run), "".join(body))


def _results_of(folder: Path) -> dict[str, Any] | None:
    from agentgym.view.sources import read_json

    return read_json(folder / "results.json")


def _results_table(results: dict[str, Any]) -> str:
    rows = results.get("horizons") or []
    keys = [k for k in ("horizon", "episodes", "success", "success_ci_low", "success_ci_high", "mean_turns",
                        "cap_hit_rate", "invalid_action_rate", "tokens_per_episode") if rows and k in rows[0]]  # fmt: skip
    out = ["<table><tr>", *(f"<th>{e(k)}</th>" for k in keys), "</tr>"]
    for r in rows:
        out += ["<tr>", *(f'<td class="num">{num(r.get(k))}</td>' for k in keys), "</tr>"]
    out.append("</table>")
    return "".join(out)
