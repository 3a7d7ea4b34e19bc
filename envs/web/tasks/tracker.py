"""Issue tracker tasks: count and look up issues; close, create, label, rename, reassign
and comment. Every task starts with a login.

Information tasks are checked against the answer. State tasks are checked against the
whole database: the expected changes must be there and nothing else may have changed.
"""

from __future__ import annotations

import random
import sqlite3
import urllib.parse
from functools import lru_cache
from typing import Any

from agentgym.envs.web.apps.tracker_data import COMPONENTS, LABELS, USERS, Issue, password, tracker
from agentgym.envs.web.tasks import answer, check_answer, click, goto, select, split_tasks, type_text

from agentgym.env import Task

_FULL = dict(USERS)
_NEW_PROBLEMS = ("fails on Safari", "should remember the last filter", "double-counts items", "needs an undo button",
                 "times out behind a proxy", "should show a progress bar")  # fmt: skip
_COMMENTS = ("Confirmed on the latest build.", "Can we ship this next week?", "Duplicate of an older report.",
             "I will take this one.")  # fmt: skip


def _who(user: str) -> str:
    return f"{_FULL[user]} ({user})"


def _login(user: str) -> list:
    return [type_text("textbox", "Username", user), type_text("textbox", "Password", password(user), submit=True)]


def _open(issue: Issue) -> list:
    return [type_text("searchbox", "Search issues", issue.title, submit=True), click("link", issue.title)]


def _state(user: str, **expect: Any) -> dict[str, Any]:
    return {"kind": "state", "user": user, "expect": expect}


@lru_cache(maxsize=8)
def _instances(seed: int) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    issues = tracker(seed)
    rng = random.Random(f"tracker-tasks-{seed}")
    names = [u for u, _ in USERS]
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {
        k: [] for k in ("count", "count_assignee", "assignee", "close_all", "close_mine", "create", "add_label",
                        "rename", "comment")}  # fmt: skip
    is_open = [it for it in issues if it.status == "open"]
    for label in LABELS:
        tagged = [it for it in is_open if label in it.labels]
        user = rng.choice(names)
        head = f"Log in to the tracker as {user} (password: {password(user)}). "
        plan = [*_login(user), select("Label", label), click("button", "Filter"), answer(str(len(tagged)))]
        groups["count"].append((head + f"How many open issues are labelled {label}? Answer with a number.",
                                {"kind": "info", "answer": str(len(tagged)), "answer_type": "int", "plan": plan}))  # fmt: skip
        url = "/issues?" + urllib.parse.urlencode({"status": "open", "label": label})
        steps = [*_login(user), select("Label", label), click("button", "Filter")]
        for i, it in enumerate(tagged):
            steps += [click("link", it.title), click("button", "Close issue")]
            if i < len(tagged) - 1:
                steps.append(goto(url))
        text = head + f"Close every open issue labelled {label}, and no other issue."
        meta = _state(user, status={str(it.id): "closed" for it in tagged})
        groups["close_all"].append((text, {**meta, "plan": [*steps, answer("done")]}))
        for owner in names:
            mine = [it for it in tagged if it.assignee == owner]
            plan = [*_login(user), select("Label", label), select("Assignee", _who(owner)), click("button", "Filter")]
            groups["count_assignee"].append((
                head + f"How many open issues labelled {label} are assigned to {owner}? Answer with a number.",
                {"kind": "info", "answer": str(len(mine)), "answer_type": "int", "plan": [*plan, answer(str(len(mine)))]},
            ))  # fmt: skip
            if not mine:
                continue
            url = "/issues?" + urllib.parse.urlencode({"status": "open", "label": label, "assignee": owner})
            for i, it in enumerate(mine):
                plan += [click("link", it.title), click("button", "Close issue")]
                if i < len(mine) - 1:
                    plan.append(goto(url))
            text = head + f"Close every open issue labelled {label} that is assigned to {owner}, and no other issue."
            meta = _state(user, status={str(it.id): "closed" for it in mine})
            groups["close_mine"].append((text, {**meta, "plan": [*plan, answer("done")]}))
    for it in issues:
        user = rng.choice(names)
        head = f"Log in to the tracker as {user} (password: {password(user)}). "
        who = it.assignee or "nobody"
        plan = [*_login(user), type_text("searchbox", "Search issues", it.title, submit=True), answer(who)]
        if it.status == "open":  # the list shows open issues unless asked otherwise
            groups["assignee"].append((head + f'Who is assigned to the issue "{it.title}"? Answer with their username, or "nobody".',
                                       {"kind": "info", "answer": who, "answer_type": "user", "plan": plan}))  # fmt: skip
            missing = [x for x in LABELS if x not in it.labels]
            label = rng.choice(missing)
            plan = [*_login(user), *_open(it), select("Add label", label), click("button", "Add"), answer("done")]
            meta = _state(user, labels={str(it.id): sorted([*it.labels, label])})
            groups["add_label"].append(
                (head + f'Add the label {label} to the issue "{it.title}".', {**meta, "plan": plan})
            )
            new_title = f"{it.title} ({rng.choice(('v2', 'regression', 'mobile', 'urgent'))})"
            owner = rng.choice([u for u in names if u != it.assignee])
            plan = [*_login(user), *_open(it), click("link", "Edit issue"), type_text("textbox", "Title", new_title),
                    select("Assignee", _who(owner)), click("button", "Save changes"), answer("done")]  # fmt: skip
            meta = _state(user, title={str(it.id): new_title}, assignee={str(it.id): owner})
            text = head + f'Rename the issue "{it.title}" to "{new_title}" and assign it to {owner}.'
            groups["rename"].append((text, {**meta, "plan": plan}))
            note = rng.choice(_COMMENTS)
            plan = [*_login(user), *_open(it), type_text("textbox", "Comment", note), click("button", "Add comment"),
                    answer("done")]  # fmt: skip
            meta = _state(user, comment={"issue": it.id, "body": note})
            groups["comment"].append((head + f'Comment "{note}" on the issue "{it.title}".', {**meta, "plan": plan}))
    for component in COMPONENTS:
        for problem in _NEW_PROBLEMS:
            user, owner, label = rng.choice(names), rng.choice(names), rng.choice(LABELS)
            title, body = f"{component} {problem}", f"Reported by a customer: {component.lower()} {problem}."
            plan = [*_login(user), click("link", "New issue"), type_text("textbox", "Title", title),
                    type_text("textbox", "Description", body), select("Label", label), select("Assignee", _who(owner)),
                    click("button", "Create issue"), answer("done")]  # fmt: skip
            head = f"Log in to the tracker as {user} (password: {password(user)}). "
            text = (
                head
                + f'Create an issue titled "{title}" with the description "{body}", labelled {label} and assigned to {owner}.'
            )
            meta = _state(
                user, new={"title": title, "body": body, "labels": [label], "assignee": owner, "author": user}
            )
            groups["create"].append((text, {**meta, "plan": plan}))
    return groups


def make_tasks(split: str, data_seed: int, task_seed: int) -> list[Task]:
    """The tracker tasks of `split` for the issues of `data_seed`."""
    return split_tasks("tracker", _instances(data_seed), split, task_seed)


def _snapshot(db: sqlite3.Connection) -> dict[int, dict[str, Any]]:
    state = {
        r[0]: {"title": r[1], "body": r[2], "status": r[3], "author": r[4], "assignee": r[5], "labels": []}
        for r in db.execute("SELECT id, title, body, status, author, assignee FROM issues")
    }
    for issue_id, label in db.execute("SELECT issue_id, label FROM issue_labels ORDER BY label"):
        if issue_id in state:
            state[issue_id]["labels"].append(label)
    return state


def grade(task: Task, given: str, db: sqlite3.Connection, data_seed: int) -> tuple[bool, str]:
    """(success, reason) of an episode, from the answer or from the whole database."""
    meta = task.metadata
    if meta["kind"] == "info":
        return check_answer(meta["answer"], meta["answer_type"], given)
    want = {
        it.id: {"title": it.title, "body": it.body, "status": it.status, "author": it.author, "assignee": it.assignee,
                "labels": sorted(it.labels, key=str)}
        for it in tracker(data_seed)
    }  # fmt: skip
    for it in want.values():
        it["labels"].sort()
    expect = meta["expect"]
    for key in ("status", "labels", "title", "assignee"):
        for issue_id, value in expect.get(key, {}).items():
            want[int(issue_id)][key] = value
    got = _snapshot(db)
    if "new" in expect:
        new = [got.pop(i) for i in sorted(got) if i not in want]
        if len(new) != 1:
            return False, f"expected exactly one new issue, found {len(new)}"
        spec = expect["new"]
        if {k: new[0][k] for k in spec} != spec or new[0]["status"] != "open":
            return False, "the new issue does not have the asked title, description, label, assignee or author"
    changed = sorted(i for i in set(want) | set(got) if want.get(i) != got.get(i))
    if changed:
        return False, "issues not in the expected state: " + ", ".join(f"#{i}" for i in changed[:8])
    seeded = sum(len(it.comments) for it in tracker(data_seed))
    comments = db.execute("SELECT issue_id, author, body FROM comments WHERE id > ?", (seeded,)).fetchall()
    spec = expect.get("comment")
    wanted = [] if spec is None else [(spec["issue"], meta["user"], spec["body"])]
    if [tuple(c) for c in comments] != wanted:
        return False, "the comments are not as asked"
    return True, "the tracker is in the expected state"
