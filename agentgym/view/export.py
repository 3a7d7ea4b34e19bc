"""`agentgym view PATH --export DIR`: the same pages as a static site, for sharing.

The export follows the pages' links from the runs page outwards, breadth first, and writes
each page as a file, its links rewritten to relative file names (the site works from any
folder or web server, and from `file://`): runs, then each run's page and its trajectory
files' first table pages, then their episodes and token views, further pages, filters,
comparisons. It stops at the size cap (`--max-mb`): a huge run exports its summary and the
first pages of its episodes; a link to a page left out leads to a page that says so.
Sorting links are not followed (a sorted copy of every page would multiply the size).
"""

from __future__ import annotations

import re
import sys
from collections import deque
from html import escape, unescape
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from agentgym.view import pages
from agentgym.view.server import Viewer

__all__ = ["export_site", "static_name"]

_HREF = re.compile(r'(href|src)="([^"]*)"')
_FORM = re.compile(r"<form\b.*?</form>", re.S)
NOT_EXPORTED = "not-exported.html"


def static_name(path: str, query: dict[str, str]) -> str:
    """The file a page is written to: `/r/0/eval/trajectories.jsonl?episode=3` ->
    `r/0/eval/trajectories.jsonl/episode=3.html`; a folder's page is its `index.html`;
    images keep their names."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "index.html"
    suffix = PurePosixPath(parts[-1]).suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg") and not query:
        return "/".join(parts)
    if not query:
        return "/".join([*parts, "index.html"])
    slug = re.sub(r"[^A-Za-z0-9=._,-]+", "_", urlencode(sorted(query.items())).replace("&", ","))
    return "/".join([*parts, f"{slug[:150]}.html"])


def _relative(from_file: str, to_file: str) -> str:
    start = PurePosixPath(from_file).parent
    target = PurePosixPath(to_file)
    common = 0
    for a, b in zip(start.parts, target.parts, strict=False):
        if a != b:
            break
        common += 1
    up = [".."] * (len(start.parts) - common)
    return "/".join([*up, *target.parts[common:]]) or target.name


def export_site(viewer: Viewer, out: Path, max_mb: float = 50.0, log=lambda s: print(s, file=sys.stderr)) -> dict:
    """Write the static site into `out` (created; must be empty or absent); returns counts."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: export into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    cap = int(max_mb * 1e6)
    queue: deque[tuple[str, dict[str, str]]] = deque([("/", {})])
    seen = {static_name("/", {})}
    origin: dict[str, str] = {}  # each written page's URL, which its relative links are resolved against
    written, size, left_out = 0, 0, 0
    pending: list[tuple[str, bytes]] = []  # pages whose links are rewritten once all names are known
    exported: set[str] = set()
    while queue:
        path, query = queue.popleft()
        name = static_name(path, query)
        status, kind, body = viewer.render(path, query)
        if status != 200:
            continue
        if size + len(body) > cap:
            left_out += 1
            continue
        size += len(body)
        exported.add(name)
        if not kind.startswith("text/html"):
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            written += 1
            continue
        pending.append((name, body))
        base = path + (("?" + urlencode(query)) if query else "")
        origin[name] = base
        for _, href in _HREF.findall(body.decode()):
            link = _link(base, unescape(href))
            if link is None:
                continue
            lpath, lquery = link
            lname = static_name(lpath, lquery)
            if lname not in seen:
                seen.add(lname)
                queue.append((lpath, lquery))
        if written and written % 500 == 0:
            log(f"agentgym view --export: {written} pages, {size / 1e6:.1f} MB")
        written += 1
    for name, body in pending:
        html = _FORM.sub("", body.decode())  # a static page has no server to send a form to: its links remain
        html = _HREF.sub(lambda m, name=name: _rewrite(m, name, origin[name], exported), html)
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    left_out += len(queue)
    note = pages.page(
        "Not exported",
        f"<p>This page was left out of the export: the export is capped at {max_mb:g} MB "
        f"(agentgym view --export --max-mb). {left_out} pages were left out.</p>",
    )
    exported.add(NOT_EXPORTED)
    (out / NOT_EXPORTED).write_text(_HREF.sub(lambda m: _rewrite(m, NOT_EXPORTED, "/", exported), note))
    return {"pages": written, "bytes": size, "left_out": left_out}


def _link(base: str, href: str) -> tuple[str, dict[str, str]] | None:
    """The (path, query) a page's link leads to, if the export follows it."""
    if not href or href.startswith(("http://", "https://", "mailto:", "data:")):
        return None
    parts = urlsplit(urljoin("http://x" + base, href))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if query.get("sort"):
        return None
    query = {k: v for k, v in query.items() if v != "" and k != "sort"}
    return parts.path, query


def _rewrite(match: re.Match, name: str, url: str, exported: set[str]) -> str:
    """A link of page `name` (written from `url`) as a relative file name; a page that was
    not exported leads to the not-exported page."""
    attr, href = match.group(1), unescape(match.group(2))
    if href.startswith(("http://", "https://", "mailto:", "data:")):
        return match.group(0)
    href, _, fragment = href.partition("#")
    fragment = f"#{fragment}" if fragment else ""
    if href == "" and fragment:
        return f'{attr}="{escape(fragment)}"'
    link = _link(url, href)
    target = static_name(*link) if link is not None else NOT_EXPORTED
    if target not in exported:
        target = NOT_EXPORTED
    return f'{attr}="{escape(_relative(name, target) + fragment)}"'
