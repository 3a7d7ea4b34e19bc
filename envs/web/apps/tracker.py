"""The issue tracker app: log in, filter and search issues, create, edit, label, comment,
close and reopen. Server-rendered forms (updating the page in place, `html.IN_PAGE`); the
login is a cookie."""

from __future__ import annotations

import secrets
import sqlite3
import urllib.parse

from agentgym.envs.web.apps.tracker_data import seed_db
from agentgym.envs.web.html import esc, field, layout, link, post_button, table
from agentgym.envs.web.server import Request, Response, Router

SITE = "Tracker"
STATUSES = (("open", "Open"), ("closed", "Closed"), ("all", "All"))

router = Router()


def _user(req: Request) -> str | None:
    row = req.db.execute("SELECT username FROM logins WHERE token = ?", (req.cookies.get("sid", ""),)).fetchone()
    return row[0] if row else None


def _page(req: Request, user: str | None, title: str, body: str) -> Response:
    nav = ""
    if user:
        nav = link("/issues", "Issues") + link("/issues/new", "New issue")
        nav += f"<span>Signed in as {esc(user)}</span> " + post_button("/logout", "Log out")
    footer = link("https://docs.tracker.example/", "Tracker documentation")  # outside: blocked by the browser
    return Response(layout(SITE, title, nav, body, req.query.get("msg", ""), footer))


def _back(path: str, msg: str) -> Response:
    return Response.redirect(f"{path}?msg={urllib.parse.quote(msg)}")


def _choices(db: sqlite3.Connection, what: str) -> list[tuple[str, str]]:
    if what == "labels":
        return [(r[0], r[0]) for r in db.execute("SELECT name FROM labels ORDER BY rowid")]
    return [(r[0], f"{r[1]} ({r[0]})") for r in db.execute("SELECT username, full_name FROM users ORDER BY username")]


@router.route("GET", "/login")
def login_page(req: Request) -> Response:
    form = (
        '<form method="post" action="/login">'
        + field("Username", "username")
        + field("Password", "password", "password")
    )
    return _page(req, None, "Log in", form + "<button>Log in</button></form>")


@router.route("POST", "/login")
def login(req: Request) -> Response:
    row = req.db.execute("SELECT password FROM users WHERE username = ?", (req.arg("username"),)).fetchone()
    if row is None or row[0] != req.form.get("password", ""):
        return _back("/login", "Wrong username or password.")
    token = secrets.token_hex(8)
    req.db.execute("INSERT INTO logins VALUES (?, ?)", (token, req.arg("username")))
    return Response.redirect("/issues", **{"Set-Cookie": f"sid={token}; Path=/; HttpOnly"})


@router.route("POST", "/logout")
def logout(req: Request) -> Response:
    req.db.execute("DELETE FROM logins WHERE token = ?", (req.cookies.get("sid", ""),))
    return Response.redirect("/login", **{"Set-Cookie": "sid=; Path=/; Max-Age=0"})


@router.route("GET", "/")
def home(req: Request) -> Response:
    return Response.redirect("/issues")


@router.route("GET", "/issues")
def issues(req: Request, user: str) -> Response:
    status, label, assignee, q = req.arg("status", "open"), req.arg("label"), req.arg("assignee"), req.arg("q")
    where, args = [], []
    if status in ("open", "closed"):
        where.append("status = ?")
        args.append(status)
    if label:
        where.append("id IN (SELECT issue_id FROM issue_labels WHERE label = ?)")
        args.append(label)
    if assignee:
        where.append("assignee = ?")
        args.append("" if assignee == "-" else assignee)
    for word in q.lower().split():
        where.append("lower(title) LIKE ?")
        args.append(f"%{word}%")
    sql = "SELECT * FROM issues" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    rows = req.db.execute(sql, args).fetchall()
    labels = {r["id"]: [] for r in rows}
    for r in req.db.execute("SELECT * FROM issue_labels ORDER BY label"):
        if r["issue_id"] in labels:
            labels[r["issue_id"]].append(r["label"])
    form = '<form method="get" action="/issues" role="search">' + field("Search issues", "q", "search", q)
    form += field("Status", "status", "select", status, STATUSES)
    form += field("Label", "label", "select", label, [("", "Any label"), *_choices(req.db, "labels")])
    users = [("", "Anyone"), ("-", "Nobody"), *_choices(req.db, "users")]
    form += field("Assignee", "assignee", "select", assignee, users) + "<button>Filter</button></form>"
    cells = [[f"#{r['id']}", link(f"/issues/{r['id']}", r["title"]), esc(", ".join(labels[r["id"]])),
              esc(r["assignee"] or "nobody"), esc(r["status"])] for r in rows]  # fmt: skip
    body = form + f"<p>{len(rows)} issues</p>"
    body += table(("#", "Title", "Labels", "Assignee", "Status"), cells) if rows else "<p>No issues match.</p>"
    return _page(req, user, "Issues", body)


def _issue(req: Request, iid: str) -> sqlite3.Row | None:
    return req.db.execute("SELECT * FROM issues WHERE id = ?", (int(iid),)).fetchone()


@router.route("GET", r"/issues/(\d+)")
def issue(req: Request, user: str, iid: str) -> Response:
    it = _issue(req, iid)
    if it is None:
        return Response(layout(SITE, "Not found", "", "<p>No such issue.</p>"), 404)
    path = f"/issues/{it['id']}"
    labels = [
        r[0] for r in req.db.execute("SELECT label FROM issue_labels WHERE issue_id = ? ORDER BY label", (it["id"],))
    ]
    body = f"<p>Status: {esc(it['status'])}</p><p>Opened by {esc(it['author'])}</p>"
    body += f"<p>Assignee: {esc(it['assignee'] or 'nobody')}</p><p>{esc(it['body'])}</p>"
    body += (
        "<h2>Labels</h2><ul>"
        + "".join(
            f"<li>{esc(x)} {post_button(path + '/labels/remove', f'Remove label {x}', label=x)}</li>" for x in labels
        )
        + "</ul>"
    )
    add = [(x, x) for x, _ in _choices(req.db, "labels") if x not in labels]
    if add:
        body += f'<form method="post" action="{path}/labels/add">' + field("Add label", "label", "select", "", add)
        body += "<button>Add</button></form>"
    body += "<h2>Actions</h2>" + link(f"{path}/edit", "Edit issue") + " "
    body += post_button(f"{path}/status", "Close issue" if it["status"] == "open" else "Reopen issue")
    comments = req.db.execute("SELECT * FROM comments WHERE issue_id = ? ORDER BY id", (it["id"],)).fetchall()
    body += "<h2>Comments</h2>" + "".join(f"<p>{esc(c['author'])}: {esc(c['body'])}</p>" for c in comments)
    body += f'<form method="post" action="{path}/comment">' + field("Comment", "body", "textarea")
    body += "<button>Add comment</button></form>"
    return _page(req, user, f"#{it['id']} {it['title']}", body)


@router.route("POST", r"/issues/(\d+)/status")
def toggle(req: Request, user: str, iid: str) -> Response:
    it = _issue(req, iid)
    if it is None:
        return _back("/issues", f"There is no issue #{iid}.")
    new = "closed" if it["status"] == "open" else "open"
    req.db.execute("UPDATE issues SET status = ? WHERE id = ?", (new, it["id"]))
    return _back(f"/issues/{it['id']}", f"Issue #{it['id']} {'closed' if new == 'closed' else 'reopened'}.")


@router.route("POST", r"/issues/(\d+)/labels/(add|remove)")
def relabel(req: Request, user: str, iid: str, how: str) -> Response:
    label = req.arg("label")
    if _issue(req, iid) is None:
        return _back("/issues", f"There is no issue #{iid}.")
    if not req.db.execute("SELECT 1 FROM labels WHERE name = ?", (label,)).fetchone():
        return _back(f"/issues/{iid}", f"Unknown label {label!r}.")
    if how == "add":
        req.db.execute("INSERT OR IGNORE INTO issue_labels VALUES (?, ?)", (int(iid), label))
    else:
        req.db.execute("DELETE FROM issue_labels WHERE issue_id = ? AND label = ?", (int(iid), label))
    return _back(f"/issues/{iid}", f"Label {label} {'added' if how == 'add' else 'removed'}.")


@router.route("POST", r"/issues/(\d+)/comment")
def comment(req: Request, user: str, iid: str) -> Response:
    if not req.arg("body"):
        return _back(f"/issues/{iid}", "A comment cannot be empty.")
    req.db.execute("INSERT INTO comments (issue_id, author, body) VALUES (?,?,?)", (int(iid), user, req.arg("body")))
    return _back(f"/issues/{iid}", "Comment added.")


def _issue_form(req: Request, action: str, title: str, body: str, assignee: str, with_label: bool) -> str:
    form = f'<form method="post" action="{action}">' + field("Title", "title", "text", title)
    form += field("Description", "body", "textarea", body)
    if with_label:
        form += field("Label", "label", "select", "", [("", "No label"), *_choices(req.db, "labels")])
    form += field("Assignee", "assignee", "select", assignee, [("", "Nobody"), *_choices(req.db, "users")])
    return form


@router.route("GET", r"/issues/(\d+)/edit")
def edit_page(req: Request, user: str, iid: str) -> Response:
    it = _issue(req, iid)
    if it is None:
        return Response(layout(SITE, "Not found", "", "<p>No such issue.</p>"), 404)
    form = _issue_form(req, f"/issues/{it['id']}/edit", it["title"], it["body"], it["assignee"], False)
    return _page(req, user, f"Edit #{it['id']}", form + "<button>Save changes</button></form>")


@router.route("POST", r"/issues/(\d+)/edit")
def edit(req: Request, user: str, iid: str) -> Response:
    if not req.arg("title"):
        return _back(f"/issues/{iid}/edit", "The title cannot be empty.")
    req.db.execute(
        "UPDATE issues SET title = ?, body = ?, assignee = ? WHERE id = ?",
        (req.arg("title"), req.arg("body"), req.arg("assignee"), int(iid)),
    )
    return _back(f"/issues/{iid}", "Issue updated.")


@router.route("GET", "/issues/new")
def new_page(req: Request, user: str) -> Response:
    form = _issue_form(req, "/issues/new", "", "", "", True)
    return _page(req, user, "New issue", form + "<button>Create issue</button></form>")


@router.route("POST", "/issues/new")
def create(req: Request, user: str) -> Response:
    if not req.arg("title"):
        return _back("/issues/new", "The title cannot be empty.")
    cur = req.db.execute(
        "INSERT INTO issues (title, body, status, author, assignee) VALUES (?, ?, 'open', ?, ?)",
        (req.arg("title"), req.arg("body"), user, req.arg("assignee")),
    )
    if req.arg("label"):
        req.db.execute("INSERT INTO issue_labels VALUES (?, ?)", (cur.lastrowid, req.arg("label")))
    return _back(f"/issues/{cur.lastrowid}", f"Issue #{cur.lastrowid} created.")


_PUBLIC = {login_page, login, logout, home}


class TrackerApp:
    """The issue tracker, as an `App` for the server; every page but the login needs a login."""

    name = "tracker"

    def seed(self, db: sqlite3.Connection, data_seed: int) -> None:
        seed_db(db, data_seed)

    def handle(self, req: Request) -> Response:
        for method, pattern, fn in router.routes:
            m = pattern.match(req.path)
            if m and method == req.method and fn not in _PUBLIC:
                user = _user(req)
                if user is None:
                    return _back("/login", "Please log in first.")
                return fn(req, user, *m.groups())
        return router.dispatch(req)
