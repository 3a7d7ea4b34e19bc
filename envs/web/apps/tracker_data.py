"""The issue tracker's content: users, labels, issues and comments, deterministic from a seed.

`tracker(seed)` builds it in memory (the task generator reads it from there);
`seed_db` writes the same content into SQLite for the server.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from functools import lru_cache

#: (username, full name); each user's password is `<username>-pass`.
USERS = (("alice", "Alice Martin"), ("bob", "Bob Chen"), ("carol", "Carol Diaz"), ("dave", "Dave Okafor"),
         ("erin", "Erin Walsh"))  # fmt: skip
LABELS = ("bug", "feature", "docs", "ui", "performance", "security", "question")
COMPONENTS = ("Login", "Search", "Export", "Settings", "Dashboard", "API", "Editor", "Notifications", "Billing",
              "Reports")  # fmt: skip
PROBLEMS = (
    "crashes on empty input", "is slow with many items", "shows the wrong date", "needs a dark mode",
    "button is misaligned", "returns 500 on timeout", "should support CSV", "has a typo in the help text",
    "leaks memory overnight", "loses unsaved changes", "ignores the time zone", "needs keyboard shortcuts",
)  # fmt: skip
NUM_ISSUES = 60


def password(username: str) -> str:
    return f"{username}-pass"


@dataclass(frozen=True)
class Issue:
    id: int
    title: str
    body: str
    status: str  # "open" | "closed"
    author: str
    assignee: str  # "" when nobody
    labels: tuple[str, ...]
    comments: tuple[tuple[str, str], ...]  # (author, text)


@lru_cache(maxsize=8)
def tracker(seed: int = 0) -> tuple[Issue, ...]:
    """The issues for `seed` (titles unique)."""
    rng = random.Random(f"tracker-{seed}")
    titles = rng.sample([f"{c} {p}" for c in COMPONENTS for p in PROBLEMS], NUM_ISSUES)
    users = [u for u, _ in USERS]
    issues = []
    for i, title in enumerate(titles, start=1):
        labels = tuple(sorted(rng.sample(LABELS, rng.choice((1, 1, 2))), key=LABELS.index))
        assignee = rng.choice(users) if rng.random() < 0.8 else ""
        comments = tuple(
            (rng.choice(users), rng.choice(("I can reproduce this.", "Any update?", "Fixed on my branch.", "+1")))
            for _ in range(rng.randint(0, 2))
        )
        status = "open" if rng.random() < 0.7 else "closed"
        body = f"Steps: open {title.split()[0]} and try again. Seen since version 2.{rng.randint(0, 9)}."
        issues.append(Issue(i, title, body, status, rng.choice(users), assignee, labels, comments))
    return tuple(issues)


SCHEMA = """
CREATE TABLE users (username TEXT PRIMARY KEY, full_name TEXT, password TEXT);
CREATE TABLE logins (token TEXT PRIMARY KEY, username TEXT);
CREATE TABLE labels (name TEXT PRIMARY KEY);
CREATE TABLE issues (id INTEGER PRIMARY KEY, title TEXT, body TEXT, status TEXT, author TEXT, assignee TEXT);
CREATE TABLE issue_labels (issue_id INTEGER, label TEXT, PRIMARY KEY (issue_id, label));
CREATE TABLE comments (id INTEGER PRIMARY KEY, issue_id INTEGER, author TEXT, body TEXT);
"""


def seed_db(db: sqlite3.Connection, seed: int) -> None:
    """Create the tracker's tables and insert `tracker(seed)`."""
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO users VALUES (?,?,?)", [(u, n, password(u)) for u, n in USERS])
    db.executemany("INSERT INTO labels VALUES (?)", [(name,) for name in LABELS])
    for it in tracker(seed):
        db.execute(
            "INSERT INTO issues VALUES (?,?,?,?,?,?)", (it.id, it.title, it.body, it.status, it.author, it.assignee)
        )
        db.executemany("INSERT INTO issue_labels VALUES (?,?)", [(it.id, label) for label in it.labels])
        db.executemany(
            "INSERT INTO comments (issue_id, author, body) VALUES (?,?,?)", [(it.id, a, b) for a, b in it.comments]
        )
