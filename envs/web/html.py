"""Small HTML helpers for the server-rendered apps (no templates).

Every field has a visible `<label>`, so the accessibility snapshot names it ("combobox
"Size"", "textbox "Quantity"") the way a user reads it.

Pages carry one small script, `IN_PAGE`: a same-site link or form fetches the next page
and swaps it in (body, title, and the address, the one after a form's redirect) instead
of loading a new document. A new document costs Chromium ~100 ms before its outline can
be read (parsing, Playwright's scripts injected again, a first layout); a swap ~10 ms. What
the agent sees is the same page at the same address; back() works as before. Links to
other sites, and any fetch that fails, still navigate the ordinary way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

__all__ = ["IN_PAGE", "esc", "field", "hidden", "layout", "link", "money", "options", "post_button", "table"]

#: In-page navigation; `agentgymSettled()` resolves, with the title, once no swap is pending
#: (the env awaits it before reading the outline).
IN_PAGE = """<script>(() => {
  let pending = null;
  async function swap(url, init, push) {
    const response = await fetch(url, init);  // follows a form post's 303 like a navigation
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    if (push) history.pushState(null, "", response.url);
    document.title = page.title;
    document.body.replaceWith(page.body);
    scrollTo(0, 0);
  }
  function go(url, init, push, fallback) {
    const run = swap(url, init, push).catch(fallback).finally(() => { if (pending === run) pending = null; });
    pending = run;
  }
  document.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a[href]");
    if (!a || e.defaultPrevented || e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target
        || a.hasAttribute("download") || a.origin !== location.origin) return;
    e.preventDefault();
    go(a.href, undefined, true, () => location.assign(a.href));
  });
  document.addEventListener("submit", (e) => {
    const form = e.target, url = new URL(form.action, location.href);
    if (e.defaultPrevented || url.origin !== location.origin) return;
    e.preventDefault();
    const data = new URLSearchParams(new FormData(form, e.submitter));
    if (form.method === "post") return go(url.href, {method: "POST", body: data}, true, () => form.submit());
    url.search = data.toString();
    go(url.href, undefined, true, () => location.assign(url.href));
  });
  addEventListener("popstate", () => go(location.href, undefined, false, () => location.reload()));
  window.agentgymSettled = async () => { while (pending) await pending; return document.title; };
})();</script>"""


def esc(value: object) -> str:
    """HTML-escape any value."""
    return escape(str(value), quote=True)


def money(cents: int) -> str:
    """`1299` -> `"$12.99"`."""
    return f"${cents // 100}.{cents % 100:02d}"


def link(href: str, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def options(choices: Iterable[tuple[str, str]], selected: str = "") -> str:
    """`<option>`s from (value, label) pairs, marking `selected`."""
    return "".join(
        f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(label)}</option>' for v, label in choices
    )


def field(label: str, name: str, kind: str = "text", value: str = "", choices: Sequence[tuple[str, str]] = ()) -> str:
    """A labelled input: kind is an `<input>` type, "textarea" or "select" (with `choices`)."""
    if kind == "select":
        control = f'<select name="{esc(name)}">{options(choices, value)}</select>'
    elif kind == "textarea":
        control = f'<textarea name="{esc(name)}" rows="3">{esc(value)}</textarea>'
    else:
        extra = ' min="1" max="20"' if kind == "number" else ""
        control = f'<input type="{kind}" name="{esc(name)}" value="{esc(value)}"{extra}>'
    return f"<label>{esc(label)} {control}</label>"


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def post_button(action: str, text: str, **fields: str) -> str:
    """A one-button form that POSTs `fields` to `action`."""
    inputs = "".join(hidden(k, v) for k, v in fields.items())
    return f'<form method="post" action="{esc(action)}" class="inline">{inputs}<button>{esc(text)}</button></form>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], caption: str = "") -> str:
    """A table; cells are already HTML."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def layout(site: str, title: str, nav: str, body: str, message: str = "", footer: str = "") -> str:
    """A whole page: `<title>`, a navigation bar, an optional status message, the body and a footer."""
    note = f'<p role="status">{esc(message)}</p>' if message else ""
    foot = f"<footer>{footer}</footer>" if footer else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · {esc(site)}</title>'
        "<style>body{font-family:sans-serif;margin:1em}nav a{margin-right:1em}form.inline{display:inline}"
        f"label{{margin-right:1em}}td,th{{padding:2px 8px;text-align:left}}</style>{IN_PAGE}</head>"
        f"<body><nav>{nav}</nav><main><h1>{esc(title)}</h1>{note}{body}</main>{foot}</body></html>"
    )
