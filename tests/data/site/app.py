"""A tiny notes site for the SiteEnv tests (stdlib only): a list of notes in SQLite, a form
that adds one, a reset hook, and pages that misbehave on purpose.

    python app.py PORT DB
"""

import html
import json
import os
import socket
import sqlite3
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, DB = int(sys.argv[1]), sys.argv[2]
SEED = ["Buy milk", "Call Ada"]


def reset() -> None:
    db = sqlite3.connect(DB)
    db.execute("create table if not exists notes (id integer primary key, text text)")
    db.execute("delete from notes")
    db.executemany("insert into notes (text) values (?)", [(t,) for t in SEED])
    db.commit()
    db.close()


def page(title: str, body: str) -> bytes:
    return f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>{body}".encode()


class Handler(BaseHTTPRequestHandler):
    def send(self, body: bytes, status: int = 200, kind: str = "text/html") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/":
            self.send(page("Home", '<a href="/notes">Notes</a> <a href="/about">About</a>'))
        elif url.path == "/notes":
            db = sqlite3.connect(DB)
            rows = db.execute("select text from notes order by id").fetchall()
            db.close()
            items = "".join(f"<li>{html.escape(t)}</li>" for (t,) in rows)
            form = (
                '<form method="post" action="/notes"><label>New note <input name="text"></label>'
                "<button>Add</button></form>"
            )
            self.send(page(f"Notes ({len(rows)})", f"<ul>{items}</ul>{form}"))
        elif url.path == "/about":
            self.send(page("About", "<p>The answer is 42.</p>"))
        elif url.path == "/leak":  # tries to reach another server: fetch, image, WebSocket
            to = int(query["to"])
            script = (
                f"fetch('http://127.0.0.1:{to}/fetch').catch(() => 0);"
                f"new Image().src = 'http://127.0.0.1:{to}/img';"
                f"try {{ new WebSocket('ws://127.0.0.1:{to}/ws'); }} catch (e) {{}}"
            )
            self.send(page("Leak", f"<script>{script}</script><p>tried</p>"))
        elif url.path == "/crash":
            os._exit(3)  # the site dies mid-episode
        elif url.path == "/crash-slowly":  # the connection drops first, the process exits a moment later
            self.connection.shutdown(socket.SHUT_RDWR)
            time.sleep(0.5)
            os._exit(3)
        elif url.path == "/health":
            self.send(b"ok", kind="text/plain")
        else:
            self.send(page("Not found", ""), 404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        if self.path == "/__reset":
            reset()
            self.send(json.dumps({"reset": True}).encode(), kind="application/json")
        elif self.path == "/notes":
            db = sqlite3.connect(DB)
            db.execute("insert into notes (text) values (?)", (form.get("text", ""),))
            db.commit()
            db.close()
            self.send_response(303)
            self.send_header("Location", "/notes")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send(b"", 404)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    reset()
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
