"""Web tasks, graders and outlines, without a browser: fast specifications."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from agentgym.envs.web.apps.shop_data import seed_db as seed_shop
from agentgym.envs.web.apps.tracker_data import seed_db as seed_tracker
from agentgym.envs.web.env import WebShopEnv, WebTrackerEnv
from agentgym.envs.web.snapshot import Outline, find_ref
from agentgym.envs.web.tasks import check_answer
from agentgym.envs.web.tasks import shop as shop_tasks
from agentgym.envs.web.tasks import tracker as tracker_tasks


@pytest.mark.parametrize("cls", [WebShopEnv, WebTrackerEnv])
def test_tasks_are_deterministic_and_the_splits_disjoint(cls):
    a, b = cls(task_seed=3), cls(task_seed=3)
    assert [t.id for t in a.tasks("train")] == [t.id for t in b.tasks("train")]
    assert not {t.id for t in a.tasks("train")} & {t.id for t in a.tasks("test")}
    assert {t.id for t in cls(task_seed=4).tasks("test")} != {t.id for t in a.tasks("test")}


@pytest.mark.parametrize("cls", [WebShopEnv, WebTrackerEnv])
def test_every_template_is_in_both_splits(cls):
    env = cls()
    train = {t.metadata["template"] for t in env.tasks("train")}
    assert train == {t.metadata["template"] for t in env.tasks("test")}
    assert {t.metadata["kind"] for t in env.tasks("test")} == {"info", "state"}


def test_tasks_range_from_two_to_thirty_or_more_steps():
    turns = [t.min_turns for cls in (WebShopEnv, WebTrackerEnv) for t in cls().tasks("train")]
    assert min(turns) == 2 and max(turns) >= 30


def test_min_turns_is_the_length_of_the_plan():
    for task in WebShopEnv().tasks("test"):
        assert task.min_turns == len(task.metadata["plan"])
        assert task.metadata["plan"][-1]["op"] == "answer"


def test_constructing_an_env_and_listing_tasks_starts_no_browser_or_server():
    code = (
        "import agentgym.envs.web.browser as b, agentgym.envs.web.server as s\n"
        "from agentgym.envs.web.env import WebShopEnv\n"
        "env = WebShopEnv(); env.tasks('train'); env.tasks('test')\n"
        "assert not b._by_thread and s._server is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("expected", "kind", "given", "ok"),
    [
        ("12.99", "money", "It costs $12.99.", True),
        ("12.99", "money", "$12.98", False),
        ("7", "int", "There are 7 open issues.", True),
        ("7", "int", "seven", False),
        ("Cozy Linen Shirt", "name", "The Cozy Linen Shirt", True),
        ("Cozy Linen Shirt", "name", "Cozy Linen Shirts", False),
        ("Cozy Linen Shirt", "name", "Cozy Linen Shirt " + "or Breezy Wool Tee " * 5, False),
        ("nobody", "user", "Nobody", True),
        ("bob", "user", "bob", True),
        ("bob", "user", "alice", False),
    ],
)
def test_answers_are_judged_by_kind(expected, kind, given, ok):
    assert check_answer(expected, kind, given)[0] is ok


def _db(seed_fn):
    db = sqlite3.connect(":memory:")
    seed_fn(db, 0)
    return db


def test_an_untouched_shop_fails_a_purchase_task():
    task = next(t for t in WebShopEnv().tasks("test") if t.metadata["kind"] == "state")
    ok, why = shop_tasks.grade(task, "done", _db(seed_shop), 0)
    assert not ok and "found 0" in why


def test_closing_one_issue_too_many_fails_a_close_task():
    task = next(t for t in WebTrackerEnv().tasks("test") if t.metadata["template"] == "close_all")
    db = _db(seed_tracker)
    targets = [int(i) for i in task.metadata["expect"]["status"]]
    db.executemany("UPDATE issues SET status = 'closed' WHERE id = ?", [(i,) for i in targets])
    assert tracker_tasks.grade(task, "done", db, 0)[0]
    extra = db.execute("SELECT id FROM issues WHERE status = 'open' LIMIT 1").fetchone()[0]
    db.execute("UPDATE issues SET status = 'closed' WHERE id = ?", (extra,))
    ok, why = tracker_tasks.grade(task, "done", db, 0)
    assert not ok and f"#{extra}" in why


OUTLINE = "\n".join(
    ["- main [ref=e1]:", '  - link "Cart (0)" [ref=e2] [cursor=pointer]:', "    - /url: /cart"]
    + [f'  - link "Item {i}" [ref=e{i + 3}]' for i in range(40)]
    + ["  - 'link \"Price: $5\" [ref=e50]'"]
)


def test_find_ref_reads_refs_by_role_and_exact_name():
    assert find_ref(OUTLINE, "link", "Cart (0)") == "e2"
    assert find_ref(OUTLINE, "link", "Price: $5") == "e50"
    assert find_ref(OUTLINE, "link", "Item 1") == "e4"
    assert find_ref(OUTLINE, "button", "Cart (0)") is None


def test_outline_window_respects_the_budget_and_notes_the_cut():
    outline = Outline(OUTLINE, max_chars=200)
    text = outline.render(0)
    body = text.rsplit("\n[", 1)[0]
    assert len(body) <= 200 and "[cursor=pointer]" not in text
    assert "more lines" in text and "scroll down" in text


def test_scrolling_the_outline_down_then_up_covers_every_line():
    outline = Outline(OUTLINE, max_chars=200)
    start, seen = 0, set()
    while True:
        first, end = outline.window(start)
        seen.update(range(first, end))
        nxt = outline.page_down(start)
        if nxt == start:
            break
        start = nxt
    assert seen == set(range(len(outline.lines)))
    assert outline.page_up(start) < start and outline.page_up(0) == 0
