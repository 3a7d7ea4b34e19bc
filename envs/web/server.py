"""The loopback web server that hosts the apps, with one SQLite database per episode.

One `AppServer` runs per process (`get_server()`), a `ThreadingHTTPServer` on a free
port of 127.0.0.1 in a daemon thread. Every episode opens a *session*: a copy of the
app's seeded database and a random token. The browser context of the episode sends
the token in the `X-Agentgym-Session` header of every request, so the server knows
which app and which database a request belongs to; concurrent episodes in one process
never see each other's data, and resetting an episode is a file copy, not a restart.
"""

from __future__ import annotations

import atexit
import http.cookies
import re
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

__all__ = ["SESSION_HEADER", "App", "AppServer", "Request", "Response", "Router", "get_server"]

#: The request header that carries the episode's session token.
SESSION_HEADER = "X-Agentgym-Session"


@dataclass
class Request:
    """One HTTP request, parsed, with the episode's database open as `db`."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    cookies: dict[str, str]
    db: sqlite3.Connection
    params: tuple[str, ...] = ()

    def arg(self, name: str, default: str = "") -> str:
        """A form field (POST) or query parameter (GET), stripped."""
        return (self.form.get(name) or self.query.get(name) or default).strip()


@dataclass
class Response:
    """What a handler returns: a status, an HTML body and extra headers."""

    body: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def redirect(cls, location: str, **headers: str) -> Response:
        """A 303 See Other, so that a form post is followed by a GET (reload and back() stay safe)."""
        return cls("", 303, {"Location": location, **headers})


Handler = Callable[..., Response]


class Router:
    """Maps (method, path regex) to handlers; regex groups become positional arguments."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def add(fn: Handler) -> Handler:
            self.routes.append((method, re.compile(f"^{pattern}$"), fn))
            return fn

        return add

    def dispatch(self, req: Request) -> Response:
        allowed = False
        for method, pattern, fn in self.routes:
            m = pattern.match(req.path)
            if m:
                if method != req.method:
                    allowed = True
                    continue
                return fn(req, *m.groups())
        if allowed:
            return Response(f"<h1>Method {req.method} not allowed here</h1>", 405)
        return Response("<title>Not found</title><h1>Page not found</h1><p><a href='/'>Home</a></p>", 404)


class App(Protocol):
    """A web application: a name, a seeded database and a request handler."""

    name: str

    def seed(self, db: sqlite3.Connection, data_seed: int) -> None:
        """Create the schema and insert the deterministic content of `data_seed`."""

    def handle(self, req: Request) -> Response:
        """Answer one request (`req.db` is the episode's database)."""


@dataclass
class _Session:
    app: App
    db_path: Path


class AppServer:
    """A loopback HTTP server for every app and episode of this process.

    Use `get_server()` rather than building one: a process needs only one.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="agentgym-web-"))
        self._sessions: dict[str, _Session] = {}
        self._seeds: dict[tuple[str, int], Path] = {}
        self._lock = threading.Lock()
        server = self
        handler = type("_BoundHandler", (_HTTPHandler,), {"app_server": server})
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="agentgym-web-server", daemon=True)
        self._thread.start()

    def open_session(self, app: App, data_seed: int) -> tuple[str, Path]:
        """A fresh copy of `app`'s seeded database for one episode: (token, database path)."""
        seed = self._seed_file(app, data_seed)
        token = secrets.token_hex(8)
        db_path = self.root / f"{app.name}-{token}.sqlite"
        shutil.copyfile(seed, db_path)
        with self._lock:
            self._sessions[token] = _Session(app, db_path)
        return token, db_path

    def close_session(self, token: str) -> None:
        """Forget a session and delete its database."""
        with self._lock:
            session = self._sessions.pop(token, None)
        if session is not None:
            session.db_path.unlink(missing_ok=True)

    def _seed_file(self, app: App, data_seed: int) -> Path:
        key = (app.name, data_seed)
        with self._lock:
            path = self._seeds.get(key)
            if path is None:
                path = self.root / f"seed-{app.name}-{data_seed}.sqlite"
                db = sqlite3.connect(path)
                try:
                    with db:
                        app.seed(db, data_seed)
                finally:
                    db.close()
                self._seeds[key] = path
        return path

    def session(self, token: str | None) -> _Session | None:
        return self._sessions.get(token or "")

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.root, ignore_errors=True)


class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-response (a tab closed while its favicon request was in
    flight) is normal here, not an error worth a traceback on the user's terminal."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipeError, ConnectionResetError, ...
            return
        super().handle_error(request, client_address)


class _HTTPHandler(BaseHTTPRequestHandler):
    app_server: AppServer
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves a whole episode
    # Headers and body go out in two writes; with Nagle's algorithm on, the second waits for
    # the client's delayed ACK (~40 ms on Linux loopback): every page took 44 ms instead of 1.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/favicon.ico":
            return self._send(Response("", 204))
        session = self.app_server.session(self.headers.get(SESSION_HEADER))
        if session is None:
            body = f"<h1>No episode</h1><p>Requests need a valid {SESSION_HEADER} header.</p>"
            return self._send(Response(body, 400))
        form: dict[str, str] = {}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
        cookies = {k: m.value for k, m in http.cookies.SimpleCookie(self.headers.get("Cookie", "")).items()}
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        db = sqlite3.connect(session.db_path)
        db.row_factory = sqlite3.Row
        try:
            with db:
                response = session.app.handle(Request(method, url.path, query, form, cookies, db))
        finally:
            db.close()
        self._send(response)

    def _send(self, response: Response) -> None:
        body = response.body.encode("utf-8")
        self.send_response(response.status)
        if body:
            self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


_server: AppServer | None = None
_server_lock = threading.Lock()


def get_server() -> AppServer:
    """The process's `AppServer`, started on first use."""
    global _server
    with _server_lock:
        if _server is None:
            _server = AppServer()
            atexit.register(_server.shutdown)
        return _server
