"""The viewer's HTTP server: read-only, on 127.0.0.1 unless a host is given, serving only
what is under the paths given (`sources.Roots`).

URLs (each view has one, so each can be linked to):

    /                                       the runs found, success vs turns overlaid
    /r/K/RUN_FOLDER                         a run: its curves and trajectory files
    /r/K/FILE.jsonl?end_reason=failure&sort=-turns&page=2    the episode table
    /r/K/FILE.jsonl?episode=12#turn-3       one episode, scrolled to its 3rd turn
    /r/K/FILE.jsonl?episode=12&view=tokens  its tokens (loss mask, log-prob heat map)
    /r/K/FILE.jsonl?view=compare&task=T&a=12&b=40   two episodes of a task side by side
    /r/K/FILE.jsonl?view=compare&task=T&a=12&other=/r/K/OTHER.jsonl    ... and from another run
"""

from __future__ import annotations

import mimetypes
import os
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from agentgym.view import episodes, pages
from agentgym.view.index import EpisodeIndex
from agentgym.view.sources import Refused, Roots, Run, find_runs, is_trajectory_file, read_json

__all__ = ["Viewer", "make_server"]

#: Files shown as text in a page, and files served as they are (images).
TEXT_SUFFIXES = {".md", ".csv", ".json", ".txt", ".yaml", ".log"}
IMAGE_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg"}
MAX_TEXT_BYTES = 2 << 20


class Viewer:
    """What the pages are made from: the roots, the runs found in them (found again when a
    page asks for a run that appeared since), indexes and tokenizers (loaded once each)."""

    def __init__(self, paths: list[str | Path], cache: Path | None = None):
        self.roots = Roots(paths)
        self.cache = cache
        self._lock = threading.Lock()
        self._indexes: dict[Path, tuple[tuple[int, int], EpisodeIndex]] = {}
        self._tokenizers: dict[str, tuple[Any, str]] = {}
        self.runs, self.loose = find_runs(self.roots)

    def refresh(self) -> None:
        self.runs, self.loose = find_runs(self.roots)

    def index(self, path: Path) -> EpisodeIndex:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            held = self._indexes.get(path)
            if held is None or held[0] != stamp:
                held = (stamp, EpisodeIndex.open(path, self.cache))
                self._indexes[path] = held
            return held[1]

    def run_at(self, path: Path) -> Run | None:
        found = next((r for r in self.runs if r.path == path), None)
        if found is None:
            self.refresh()
            found = next((r for r in self.runs if r.path == path), None)
        return found

    def tokenizer_for(self, path: Path) -> tuple[Any, str]:
        """The tokenizer of the run a trajectory file belongs to (its config's policy.model),
        loaded offline; (None, why) when there is none."""
        model = self._model_of(path)
        if model is None:
            return None, "no run config with policy.model above this file"
        with self._lock:
            if model not in self._tokenizers:
                try:
                    self._tokenizers[model] = (_offline_tokenizer(model), "")
                except Exception as exc:  # any failure to load: show ids and say why
                    self._tokenizers[model] = (None, f"{model}: {type(exc).__name__}: {str(exc)[:200]}")
            return self._tokenizers[model]

    def _model_of(self, path: Path) -> str | None:
        for folder in path.parents:
            for name, pick in (("results.json", ("config", "policy", "model")), ("config.json", ("policy", "model"))):
                data: Any = read_json(folder / name)
                for key in pick:
                    data = data.get(key) if isinstance(data, dict) else None
                if isinstance(data, str) and data:
                    return data
            if any(folder == root for root in self.roots.paths):
                break
        return None

    # ------------------------------------------------------------------ pages

    def render(self, raw_path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        """(status, content type, body) of a GET."""
        path = unquote(raw_path)
        if path == "/":
            self.refresh()
            return 200, "text/html", pages.home_page(self.roots, self.runs, self.loose).encode()
        if not path.startswith("/r/"):
            return _error(404, "not found")
        k, _, rel = path[3:].partition("/")
        try:
            target = self.roots.resolve(k, rel)
        except Refused as exc:
            return _error(403, f"refused: {exc}")
        if target.is_dir():
            run = self.run_at(target)
            if run is None:
                return 200, "text/html", self._folder(target).encode()
            return 200, "text/html", pages.run_page(self.roots, run).encode()
        if is_trajectory_file(target):
            try:
                return 200, "text/html", self._trajectories(target, query).encode()
            except Refused as exc:
                return _error(403, f"refused: {exc}")
        suffix = target.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            kind = "image/svg+xml" if suffix == ".svg" else mimetypes.guess_type(target.name)[0] or "image/png"
            if suffix == ".svg":  # an SVG can carry script: shown as an image only, never as a page
                return 200, "text/plain", target.read_bytes()
            return 200, kind, target.read_bytes()
        if suffix in TEXT_SUFFIXES or target.suffix == ".jsonl":
            with open(target, "rb") as fh:
                text = fh.read(MAX_TEXT_BYTES).decode("utf-8", "replace")
            cut = "" if target.stat().st_size <= MAX_TEXT_BYTES else "\n… (cut at 2 MiB)"
            return 200, "text/html", pages.page(target.name, f"<pre>{pages.e(text + cut)}</pre>").encode()
        return _error(404, f"{target.name}: not a file the viewer shows")

    def _folder(self, folder: Path) -> str:
        inside = [r for r in self.runs if folder in r.path.parents or r.path == folder]
        files = sorted(p for p in folder.iterdir() if p.is_file())
        body = ["<ul>"]
        body += [f'<li><a href="{pages.e(self.roots.url(r.path))}">{pages.e(r.path.relative_to(folder))}</a> '
                 f"({pages.e(r.kind)})</li>" for r in inside]  # fmt: skip
        body += [f'<li><a href="{pages.e(self.roots.url(p))}">{pages.e(p.name)}</a></li>' for p in files]
        body.append("</ul>")
        return pages.page(folder.name, "".join(body))

    def _trajectories(self, path: Path, query: dict[str, str]) -> str:
        index = self.index(path)
        url = self.roots.url(path)
        view = query.get("view", "")
        episode = query.get("episode", "")
        if view == "compare" and query.get("task"):
            picked = [int(query[k]) for k in ("a", "b", "episode") if query.get(k, "").isdigit()]
            other = None
            if query.get("other", "").startswith("/r/"):
                k, _, rel = unquote(query["other"])[3:].partition("/")
                other_path = self.roots.resolve(k, rel)  # Refused when outside the served paths
                if not is_trajectory_file(other_path):
                    raise Refused(f"{query['other']!r} is not a trajectory file")
                other = (self.roots.url(other_path), self.index(other_path))
            files = [(self.roots.label(p), self.roots.url(p)) for r in self.runs for p in r.trajectories if p != path]
            files += [(self.roots.label(p), self.roots.url(p)) for p in self.loose if p != path]
            return episodes.compare_page(url, index, query["task"], picked, other, files[:30])
        if episode.isdigit() and int(episode) < len(index):
            i = int(episode)
            if view == "tokens":
                tokenizer, why = self.tokenizer_for(path)
                return episodes.tokens_page(url, index, i, tokenizer, why)
            return episodes.episode_page(url, index, i)
        return episodes.table_page(url, index, query)


def _offline_tokenizer(model: str) -> Any:
    """The tokenizer of `model` from this machine's files only: the viewer never downloads
    (a hub model must be in the local cache; the embedded one already converted)."""
    from transformers import AutoTokenizer

    from agentgym.policy.models import DEFAULT_MODEL, EMBEDDED, TINY_PREFIX, cache_dir

    name = DEFAULT_MODEL if model.startswith(TINY_PREFIX) else model
    if name in EMBEDDED:
        folder = cache_dir() / "models" / EMBEDDED[name].folder
        if not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"the embedded model is not converted on this machine yet (any agentgym command that uses it, "
                f"e.g. agentgym eval, converts it once into {folder})"
            )
        name = str(folder)
    return AutoTokenizer.from_pretrained(name, local_files_only=True)


def _error(status: int, message: str) -> tuple[int, str, bytes]:
    return status, "text/html", pages.page(f"{status}", f"<p>{pages.e(message)}</p>").encode()


class _Handler(BaseHTTPRequestHandler):
    viewer: Viewer
    server_version = "agentgym-view"

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _respond(self, body: bool) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            status, kind, data = self.viewer.render(parts.path, query)
        except Exception as exc:  # a damaged file: an error page, and the server goes on
            traceback.print_exc(file=sys.stderr)
            status, kind, data = _error(500, f"{type(exc).__name__}: {exc}")
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8" if kind.startswith("text/") else kind)
        self.send_header("Content-Length", str(len(data)))
        # No script runs on these pages, whatever a trajectory holds; nothing is framed or sniffed.
        self.send_header("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("AGENTGYM_VIEW_LOG"):
            super().log_message(format, *args)


def make_server(viewer: Viewer, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server for `viewer` on host:port (0: a free port; `server.server_address` says which)."""
    handler = type("Handler", (_Handler,), {"viewer": viewer})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
