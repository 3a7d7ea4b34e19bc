"""The viewer's episode pages: the table of a trajectory file's episodes (filtered, sorted,
paged), one episode turn by turn, its tokens, and one task's episodes side by side.

Everything a run or a model wrote goes through `e` (escaped) before it is put in a page.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from agentgym.parsing import ActionParser
from agentgym.trajectory import Trajectory
from agentgym.view.index import COLUMNS, EpisodeIndex
from agentgym.view.pages import e, num, page, query_link

__all__ = ["FILTERS", "PAGE_SIZE", "compare_page", "conversation", "episode_page", "table_page", "tokens_page"]

PAGE_SIZE = 50
#: The table's filters (query parameters).
FILTERS = ("task", "horizon", "end_reason", "success", "min_reward", "max_reward")
#: The table's columns, in order, with their headings.
TABLE = (
    ("task_id", "task"),
    ("sample", "sample"),
    ("horizon", "horizon"),
    ("end_reason", "end reason"),
    ("reward", "reward"),
    ("turns", "turns"),
    ("generated_tokens", "generated"),
    ("tokens", "tokens"),
    ("tool_calls", "tool calls"),
    ("invalid_actions", "invalid"),
)


def table_page(url: str, index: EpisodeIndex, query: dict[str, str]) -> str:
    """The episodes of a trajectory file, filtered, sorted and paged by the query."""
    f = _filters(query)
    sort = query.get("sort", "")
    try:
        rows = index.select(sort=sort, **f)
    except KeyError:
        rows, sort = index.select(**f), ""
    page_no = max(int(query.get("page", "0") or 0) if query.get("page", "0").isdigit() else 0, 0)
    pages = max(math.ceil(len(rows) / PAGE_SIZE), 1)
    page_no = min(page_no, pages - 1)
    shown = rows[page_no * PAGE_SIZE : (page_no + 1) * PAGE_SIZE]
    base = {
        k: v for k, v in query.items() if k in ("task", "horizon", "end_reason", "min_reward", "max_reward", "sort")
    }
    c = index.columns
    reasons = index.counts("end_reason")
    horizons = sorted(int(h) for h in index.counts("horizon"))
    out = [f"<p>{len(index)} episodes in <code>{e(index.path.name)}</code>"]
    if index.skipped:
        out.append(f" ({index.skipped} unreadable lines left out)")
    out.append(f"; {len(rows)} match.</p>")
    out.append(_filter_form(query, reasons, horizons))
    quick = [("all", {}), ("succeeded", {"success": "yes"}), ("failed", {"success": "no"})]
    quick += [(f"{r} ({n})", {"end_reason": r}) for r, n in reasons.items()]
    out.append(
        '<p class="quick">Show: '
        + " · ".join(f'<a href="{e(query_link(q))}">{e(label)}</a>' for label, q in quick)
        + "</p>"
    )
    out.append('<table id="episodes"><tr><th>#</th>')
    for name, heading in TABLE:
        arrow = " ▲" if sort == name else " ▼" if sort == f"-{name}" else ""
        flip = f"-{name}" if sort == name else name
        out.append(f'<th><a href="{e(query_link(base, sort=flip))}">{e(heading)}{arrow}</a></th>')
    out.append("</tr>")
    for i in shown:
        i = int(i)
        out.append(f'<tr><td><a href="{e(query_link({}, episode=i))}">{i}</a></td>')
        for name, _ in TABLE:
            v = c[name][i]
            cls = f' class="badge {e(v)}"' if name == "end_reason" else ""
            value = f"<span{cls}>{e(v)}</span>" if cls else num(v.item() if hasattr(v, "item") else v)
            out.append(f'<td class="{"num" if COLUMNS[name] != "U" else ""}">{value}</td>')
        out.append("</tr>")
    out.append("</table>")
    nav = []
    if page_no > 0:
        nav.append(f'<a href="{e(query_link(base, page=page_no - 1))}" rel="prev">previous</a>')
    nav.append(f"page {page_no + 1} of {pages}")
    if page_no + 1 < pages:
        nav.append(f'<a href="{e(query_link(base, page=page_no + 1))}" rel="next">next</a>')
    out.append(f'<p class="pager">{" · ".join(nav)}</p>')
    return page(f"Episodes: {index.path.name}", "".join(out))


def _filters(query: dict[str, str]) -> dict[str, Any]:
    def number(key: str, kind: type) -> Any:
        try:
            return kind(query[key]) if query.get(key, "") != "" else None
        except ValueError:
            return None

    return {
        "task": query.get("task", ""),
        "horizon": number("horizon", int),
        "end_reason": query.get("end_reason", ""),
        "success": {"yes": True, "no": False}.get(query.get("success", "")),
        "min_reward": number("min_reward", float),
        "max_reward": number("max_reward", float),
    }


def _filter_form(query: dict[str, str], reasons: dict[str, int], horizons: list[int]) -> str:
    def option(value: str, label: str, current: str) -> str:
        sel = " selected" if value == current else ""
        return f'<option value="{e(value)}"{sel}>{e(label)}</option>'

    reason_opts = option("", "any end reason", query.get("end_reason", "")) + "".join(
        option(r, f"{r} ({n})", query.get("end_reason", "")) for r, n in reasons.items()
    )
    horizon_opts = option("", "any horizon", query.get("horizon", "")) + "".join(
        option(str(h), f"h={h}", query.get("horizon", "")) for h in horizons
    )
    success_opts = "".join(
        option(v, label, query.get("success", "")) for v, label in (("", "any outcome"), ("yes", "succeeded"),
                                                                     ("no", "failed (any end reason but success)"))
    )  # fmt: skip
    return (
        '<form class="filters" method="get">'
        f'<input name="task" placeholder="task id contains" value="{e(query.get("task", ""))}">'
        f'<select name="horizon">{horizon_opts}</select>'
        f'<select name="success">{success_opts}</select>'
        f'<select name="end_reason">{reason_opts}</select>'
        f'<input name="min_reward" size="6" placeholder="reward ≥" value="{e(query.get("min_reward", ""))}">'
        f'<input name="max_reward" size="6" placeholder="reward ≤" value="{e(query.get("max_reward", ""))}">'
        f'<input type="hidden" name="sort" value="{e(query.get("sort", ""))}">'
        '<button type="submit">filter</button> <a href="?">clear</a></form>'
    )


# ---------------------------------------------------------------------- one episode


def _meta(traj: Trajectory, i: int) -> str:
    items = [
        ("env", traj.env_id),
        ("task", traj.task_id),
        ("sample", traj.sample),
        ("horizon", traj.horizon),
        ("end reason", traj.end_reason),
        ("reward", num(float(traj.reward))),
        ("turns", traj.turns),
        ("generated tokens", traj.generated_tokens),
        ("tokens", traj.total_tokens),
        ("tool calls", traj.tool_calls),
        ("invalid actions", traj.invalid_actions),
        ("summaries", traj.summaries),
        ("segments", len(traj.segments)),
    ]
    if traj.policy_version is not None:  # a training rollout: the weights that sampled it
        items.append(("policy version", traj.policy_version))
    out = ['<dl class="meta">']
    for k, v in items:
        cls = f' class="badge {e(v)}"' if k == "end reason" else ""
        out.append(f"<dt>{e(k)}</dt><dd><span{cls}>{e(v)}</span></dd>")
    out.append("</dl>")
    return "".join(out)


def _links(i: int, traj: Trajectory, n: int, current: str) -> str:
    views = [("episode", query_link({}, episode=i)), ("tokens", query_link({}, episode=i, view="tokens")),
             ("other samples of this task", query_link({}, task=traj.task_id, view="compare", episode=i))]  # fmt: skip
    out = [f'<a href="{e(u)}">{e(label)}</a>' if label != current else f"<b>{e(label)}</b>" for label, u in views]
    if i > 0:
        out.append(
            f'<a href="{e(query_link({}, episode=i - 1, view=current if current == "tokens" else ""))}">← previous</a>'
        )
    if i + 1 < n:
        out.append(
            f'<a href="{e(query_link({}, episode=i + 1, view=current if current == "tokens" else ""))}">next →</a>'
        )
    out.append('<a href="?">all episodes</a>')
    return f'<p class="links">{" · ".join(out)}</p>'


def conversation(traj: Trajectory, anchor_prefix: str = "") -> str:
    """The conversation turn by turn: each reply with its turn's reward, tokens, tool calls
    and validity; summaries and the context resets after them marked."""
    by_message: dict[int, tuple[int, Any]] = {}
    first_of_segment: dict[int, int] = {}
    for si, seg in enumerate(traj.segments):
        for span in seg.spans:
            if span.message is not None:
                by_message[span.message] = (si, span)
                first_of_segment.setdefault(si, span.message)
    resets = {m: si for si, m in first_of_segment.items() if si > 0}
    out = []
    assistant_seen = 0
    for m, msg in enumerate(traj.messages):
        role = str(msg.get("role", "?"))
        text = str(msg.get("content", ""))
        if m in resets:
            out.append(
                f'<div class="boundary">segment {resets[m] + 1} begins: from here the model sees its prompt and '
                "the summary, not the turns above</div>"
            )
        label, cls, anchor, details = role, role, "", ""
        if role == "assistant":
            seg_span = by_message.get(m)
            span = seg_span[1] if seg_span else None
            if span is not None and span.kind == "summary":
                label, cls = "summary", "assistant summary"
            else:
                turn = span.turn if span is not None else None
                if turn is None and span is None and assistant_seen < len(traj.turn_rewards):
                    turn = assistant_seen  # a record without message indices: replies in order
                if turn is not None:
                    label = f"turn {turn + 1} · action"
                    anchor = f' id="{anchor_prefix}turn-{turn + 1}"'
                    details = _parsed(text) + _turn_details(traj, turn)
                else:
                    label = "action (not answered: the episode ended)"
                assistant_seen += 1
        elif m == 0 and role == "system":
            label = "system prompt"
        elif m == 1:
            label = "task"
        elif role in ("user", "tool"):
            label = "observation"
        if label == "system prompt":  # long and the same in every episode: folded
            out.append(
                f'<div class="msg {e(cls)}"><details><summary class="role">{e(label)} ({len(text)} characters)'
                f"</summary><pre>{e(text)}</pre></details></div>"
            )
            continue
        out.append(
            f'<div class="msg {e(cls)}"{anchor}><span class="role">{e(label)}</span>{details}<pre>{e(text)}</pre></div>'
        )
    return "".join(out)


_PARSER = ActionParser(max_calls=1000)


def _parsed(text: str) -> str:
    """The tool calls (name and arguments) or the answer an action holds, as the env's
    parser reads them."""
    action = _PARSER.parse(text)
    lines = [
        f"call {c.name}({', '.join(f'{k}={json.dumps(v, default=str)}' for k, v in c.arguments.items())})"
        for c in action.calls
    ]
    if action.answer is not None:
        lines.append(f"answer: {action.answer}")
    return "".join(f'<div class="call">{e(line)}</div>' for line in lines)


def _turn_details(traj: Trajectory, t: int) -> str:
    bits = []
    if t < len(traj.turn_rewards):
        bits.append(f"reward {num(float(traj.turn_rewards[t]))}")
    if t < len(traj.turn_tokens):
        bits.append(f"{traj.turn_tokens[t]} tokens")
    if t < len(traj.turn_tool_calls):
        before = traj.turn_tool_calls[t - 1] if t > 0 else 0
        calls = traj.turn_tool_calls[t] - before
        if calls:
            bits.append(f"{calls} tool call{'s' if calls != 1 else ''}")
    if t < len(traj.turn_invalid) and traj.turn_invalid[t]:
        bits.append("invalid action")
    out = "".join(f'<span class="badge">{e(b)}</span>' for b in bits)
    if t < len(traj.turn_info) and traj.turn_info[t]:
        info = ", ".join(f"{k}: {json.dumps(v, default=str)}" for k, v in traj.turn_info[t].items())
        out += (
            f'<div class="info" title="what the env\'s info said after this turn (changes only)">info: {e(info)}</div>'
        )
    return out


def episode_page(url: str, index: EpisodeIndex, i: int) -> str:
    traj = index.episode(i)
    out = [_links(i, traj, len(index), "episode"), _meta(traj, i)]
    if traj.error:
        out.append(f'<h2>Error</h2><div class="error">{e(traj.error)}</div>')
    if traj.retokenized:
        out.append("<p>Some replies' tokens are the local tokenizer's reading of a server's text.</p>")
    out.append("<h2>Conversation</h2>" + conversation(traj))
    if traj.info:
        out.append(f"<h2>Last env info</h2><pre>{e(json.dumps(traj.info, indent=1, default=str))}</pre>")
    return page(f"Episode {i}: {traj.task_id}", "".join(out))


# ---------------------------------------------------------------------- tokens


def _heat(logprob: float) -> str:
    """Green when the sampled token was likely, red when it was a surprise."""
    if not math.isfinite(logprob):
        return "#ddd"
    p = math.exp(min(logprob, 0.0))
    return f"hsl({int(120 * p)} 70% 82%)"


def tokens_page(url: str, index: EpisodeIndex, i: int, tokenizer: Any, why: str = "") -> str:
    """Each segment's tokens: the prompt, then generated tokens (the loss mask's 1s, with
    their log-prob as a heat map where recorded) and env tokens; ids when no tokenizer."""
    traj = index.episode(i)
    out = [_links(i, traj, len(index), "tokens")]
    out.append(
        '<p>Key: <span class="tokens"><span class="p">prompt</span> <span class="e">env tokens (loss mask 0)</span> '
        '<span class="g" style="background:hsl(120 70% 82%)">generated, likely</span> '
        '<span class="g" style="background:hsl(0 70% 82%)">generated, unlikely</span></span>; hover a token for '
        "its id and log-prob.</p>"
    )
    if tokenizer is None:
        out.append(f"<p>Token ids shown: the run's tokenizer could not be loaded offline ({e(why)}).</p>")
    has_lp = any(any(lp != 0.0 for lp in seg.logprobs) for seg in traj.segments)
    if not has_lp:
        out.append("<p>No log-probs were recorded for this episode's replies.</p>")
    decode = _decoder(tokenizer)
    for si, seg in enumerate(traj.segments):
        gen = sum(seg.loss_mask)
        out.append(
            f"<h2>Segment {si + 1} ({e(seg.kind)}): {len(seg.prompt_ids)} prompt, {len(seg.completion_ids)} "
            f'completion tokens, {gen} trained</h2><div class="tokens seg">'
        )
        out += [f'<span class="p" title="id {t}">{e(decode(t))}</span>' for t in seg.prompt_ids]
        for t, m, lp in zip(seg.completion_ids, seg.loss_mask, seg.logprobs, strict=False):
            if m:
                tip = f"id {t}, log-prob {lp:.3f}" if has_lp else f"id {t}"
                style = f' style="background:{_heat(lp)}"' if has_lp else ""
                out.append(f'<span class="g"{style} title="{e(tip)}">{e(decode(t))}</span>')
            else:
                out.append(f'<span class="e" title="id {t}">{e(decode(t))}</span>')
        out.append("</div>")
    return page(f"Tokens of episode {i}: {traj.task_id}", "".join(out))


def _decoder(tokenizer: Any):
    if tokenizer is None:
        return lambda t: f"[{t}]"
    cache: dict[int, str] = {}

    def decode(t: int) -> str:
        if t not in cache:
            try:
                cache[t] = tokenizer.decode([t])
            except Exception:  # an id outside the vocabulary: show the id
                cache[t] = f"[{t}]"
        return cache[t]

    return decode


# ---------------------------------------------------------------------- compare


def compare_page(
    url: str,
    index: EpisodeIndex,
    task: str,
    picked: list[int],
    other: tuple[str, EpisodeIndex] | None = None,
    files: list[tuple[str, str]] = (),
) -> str:
    """One task's episodes side by side: two of this file's (`a`, `b`, else its first two),
    or this file's `a` beside the same task's episode in `other` (url, index): another run,
    or another checkpoint's evaluation. `files` (label, url) are the other files offered."""
    same = [int(i) for i in np.flatnonzero(index.columns["task_id"] == task)]
    chosen = [(index, i, "") for i in picked if 0 <= i < len(index)][: 1 if other else 2]
    for i in same:
        if len(chosen) >= (1 if other else 2):
            break
        if all(i != j for _, j, _ in chosen):
            chosen.append((index, i, ""))
    out = [f"<p>{len(same)} episodes of task <code>{e(task)}</code> in this file: "]
    out.append(", ".join(f'<a href="{e(query_link({}, episode=i))}">#{i}</a>' for i in same[:40]))
    out.append("</p>")
    if other is not None:
        other_url, other_index = other
        theirs = [int(i) for i in np.flatnonzero(other_index.columns["task_id"] == task)]
        b = int(picked[1]) if len(picked) > 1 and picked[1] in theirs else (theirs[0] if theirs else None)
        if b is None:
            out.append(f"<p>{e(other_url)} has no episode of this task.</p>")
        else:
            chosen.append((other_index, b, other_url))
    a = chosen[0][1] if chosen else 0
    if files:
        links = [
            f'<a href="{e(query_link({}, view="compare", task=task, a=a, other=u))}">{e(label)}</a>'
            for label, u in files
        ]
        out.append("<p>Compare with the same task in: " + " · ".join(links) + "</p>")
    if len(chosen) < 2:
        out.append("<p>Nothing to compare it with here.</p>")
    cols = []
    for k, (ix, i, where) in enumerate(chosen):
        traj = ix.episode(i)
        href = f"{where}?episode={i}" if where else query_link({}, episode=i)
        source = f" in {e(where)}" if where else ""
        cols.append(
            f'<div><h2><a href="{e(href)}">#{i}</a>{source}: sample {traj.sample}, h={traj.horizon}</h2>'
            f"{_meta(traj, i)}{conversation(traj, anchor_prefix=f'{k}-')}</div>"
        )
    out.append(f'<div class="cols">{"".join(cols)}</div>')
    return page(f"Compare: {task}", "".join(out))
