"""A user's tasks for a web site: a JSONL file (or a Python function) of instructions, start
paths and checks, and the checks themselves, which read the episode's final state.

One task per line:

    {"id": "find-total", "instruction": "What is the total of order 7?", "start": "/orders",
     "check": {"answer": "42.50", "match": "number"}, "split": "test", "min_turns": 3}

`check` is one check or a list of them (all must pass):

- `{"answer": "X"}` or `{"answers": ["X", "Y"]}`: the final answer, normalised (case,
  punctuation, spacing), equals one of them; `"match": "number"` compares the first number
  in the answer, `"match": "contains"` accepts an answer that contains one of them;
- `{"url": "REGEX"}`: the final page's URL matches (re.search);
- `{"text": "T"}`: the final page shows this text;
- `{"element": {"role": "button", "name": "Log out"}}`: the final page's outline has it;
- `{"function": "module:name"}`: `name(answer=..., page=..., db=..., task=...)` returns
  True/False or (ok, why); `page` is a `FinalPage`, `db` a read-only connection to the
  site's `database` (None without one).

Optional: `split` ("train" or "test"; default: a fifth of the ids, by a hash, are "test"),
`min_turns` (default 1), `difficulty`, `blocked` (URL regexes the browser refuses in this
task, e.g. a SQL editor), `plan` (the steps of `agentgym.envs.web.oracle.WebOracle`) and
`metadata`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.envs.web.snapshot import find_ref
from agentgym.envs.web.tasks import difficulty as difficulty_of

from agentgym.env import Task

__all__ = ["CHECK_KINDS", "FinalPage", "TaskFileError", "load_site_tasks", "run_checks"]

CHECK_KINDS = ("answer", "answers", "url", "text", "element", "function")
_KNOWN = {"id", "instruction", "start", "check", "split", "min_turns", "difficulty", "blocked", "plan", "metadata"}


class TaskFileError(ValueError):
    """A task file, or one of its lines, that cannot be used; the message names both."""


@dataclass
class FinalPage:
    """The page when the agent answered: its URL, title, accessibility outline and text."""

    url: str
    title: str
    outline: str
    text: str


def _import(spec: str, where: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise TaskFileError(f"{where}: cannot import {spec!r} ({exc}); give it as 'module:function'") from None
    if not callable(fn):
        raise TaskFileError(f"{where}: {spec!r} is not a function")
    return fn


def load_site_tasks(source: str | Path | Callable[[], list[dict[str, Any]]], base: Path | None = None) -> list[Task]:
    """Every task of a JSONL file (relative to `base`), or of `module:function` / a callable
    that returns the same dicts; checked line by line (`TaskFileError` naming the line)."""
    if callable(source):
        rows, where = list(source()), getattr(source, "__name__", "tasks")
        numbered = [(f"{where}[{i}]", r) for i, r in enumerate(rows)]
    elif isinstance(source, str) and re.fullmatch(r"[\w.]+:\w+", source) and not Path(source).exists():
        rows = list(_import(source, "tasks")())
        numbered = [(f"{source}[{i}]", r) for i, r in enumerate(rows)]
    else:
        path = Path(source) if base is None or Path(source).is_absolute() else base / source
        if not path.is_file():
            raise TaskFileError(f"tasks: {path}: no such file")
        numbered = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                numbered.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise TaskFileError(f"{path}:{n}: not JSON ({exc.msg} at column {exc.colno})") from None
    tasks, seen = [], set()
    for where, row in numbered:
        task = _task(row, where)
        if task.id in seen:
            raise TaskFileError(f"{where}: task id {task.id!r} appears twice")
        seen.add(task.id)
        tasks.append(task)
    if not tasks:
        raise TaskFileError(f"tasks: {source} holds no tasks")
    return tasks


def _task(row: Any, where: str) -> Task:
    if not isinstance(row, dict):
        raise TaskFileError(f"{where}: a task is a JSON object, got {type(row).__name__}")
    unknown = set(row) - _KNOWN
    if unknown:
        raise TaskFileError(f"{where}: unknown keys {sorted(unknown)}; a task has {sorted(_KNOWN)}")
    for key in ("id", "instruction"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise TaskFileError(f"{where}: {key} must be a non-empty string")
    checks = row.get("check")
    checks = [checks] if isinstance(checks, dict) else checks
    if not isinstance(checks, list) or not checks:
        raise TaskFileError(f'{where}: check must be a check or a list of them, e.g. {{"answer": "42"}}')
    for check in checks:
        _validate_check(check, where)
    split = row.get("split")
    if split is None:
        split = "test" if int(hashlib.sha256(row["id"].encode()).hexdigest(), 16) % 5 == 0 else "train"
    if split not in ("train", "test"):
        raise TaskFileError(f"{where}: split must be 'train' or 'test', got {split!r}")
    min_turns = row.get("min_turns", len(row["plan"]) if isinstance(row.get("plan"), list) else 1)
    if not isinstance(min_turns, int) or isinstance(min_turns, bool) or min_turns < 1:
        raise TaskFileError(f"{where}: min_turns must be a positive integer, got {min_turns!r}")
    start = row.get("start", "/")
    if not isinstance(start, str) or not start.startswith("/"):
        raise TaskFileError(f"{where}: start must be a path on the site, like /orders, got {start!r}")
    blocked = row.get("blocked", [])
    if not isinstance(blocked, list) or not all(isinstance(b, str) for b in blocked):
        raise TaskFileError(f"{where}: blocked must be a list of URL regexes")
    for b in blocked:
        _regex(b, f"{where}: blocked")
    metadata = dict(row.get("metadata") or {})
    metadata.update(start=start, checks=checks, blocked=blocked)
    if "plan" in row:
        metadata["plan"] = row["plan"]
    return Task(
        id=row["id"],
        instruction=row["instruction"],
        split=split,
        min_turns=min_turns,
        difficulty=row.get("difficulty", difficulty_of(min_turns)),
        metadata=metadata,
    )


def _regex(text: str, where: str) -> re.Pattern:
    try:
        return re.compile(text)
    except re.error as exc:
        raise TaskFileError(f"{where}: {text!r} is not a regular expression ({exc})") from None


def _validate_check(check: Any, where: str) -> None:
    kinds = [k for k in CHECK_KINDS if isinstance(check, dict) and k in check]
    if len(kinds) != 1:
        raise TaskFileError(f"{where}: each check has exactly one of {list(CHECK_KINDS)}, got {check!r}")
    kind = kinds[0]
    if kind in ("answer", "answers"):
        values = [check[kind]] if kind == "answer" else check[kind]
        if not isinstance(values, list) or not values or not all(isinstance(v, str | int | float) for v in values):
            raise TaskFileError(f"{where}: {kind} must be a string (answers: a list of strings)")
        if check.get("match", "text") not in ("text", "number", "contains"):
            raise TaskFileError(f"{where}: match must be 'text', 'number' or 'contains', got {check['match']!r}")
    elif kind == "url":
        _regex(check["url"], f"{where}: url")
    elif kind == "text":
        if not isinstance(check["text"], str) or not check["text"]:
            raise TaskFileError(f"{where}: text must be a non-empty string")
    elif kind == "element":
        el = check["element"]
        if not isinstance(el, dict) or not isinstance(el.get("role"), str) or not isinstance(el.get("name"), str):
            raise TaskFileError(f'{where}: element must be {{"role": ..., "name": ...}}')
    elif kind == "function":
        _import(check["function"], where)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w$.#/@%+-]", " ", str(text).lower()).split()).strip(" .")


def _number(text: str) -> float | None:
    found = re.findall(r"-?\d+(?:\.\d+)?", str(text).replace(",", ""))
    return float(found[0]) if found else None


def _one(check: dict[str, Any], answer: str, page: FinalPage, db: sqlite3.Connection | None, task: Task):
    if "answer" in check or "answers" in check:
        wanted = [check["answer"]] if "answer" in check else list(check["answers"])
        match = check.get("match", "text")
        if match == "number":
            got = _number(answer)
            targets = [t for t in (_number(w) for w in wanted) if t is not None]
            ok = got is not None and any(abs(got - t) <= 1e-6 * max(1.0, abs(t)) for t in targets)
        elif match == "contains":
            ok = any(_norm(w) in _norm(answer) for w in wanted)
        else:
            ok = _norm(answer) in {_norm(w) for w in wanted}
        return ok, "correct" if ok else f"the answer {answer[:80]!r} is not the expected one"
    if "url" in check:
        ok = re.search(check["url"], page.url) is not None
        return ok, "the page is the expected one" if ok else f"the final page {page.url} is not the expected one"
    if "text" in check:
        ok = _norm(check["text"]) in _norm(page.text)
        return ok, "the page shows it" if ok else f"the final page does not show {check['text']!r}"
    if "element" in check:
        el = check["element"]
        ok = find_ref(page.outline, el["role"], el["name"]) is not None
        return ok, "the element is there" if ok else f"the final page has no {el['role']} {el['name']!r}"
    result = _import(check["function"], "check")(answer=answer, page=page, db=db, task=task)
    ok, why = result if isinstance(result, tuple) else (bool(result), "")
    return bool(ok), why or ("the check passed" if ok else "the check failed")


def run_checks(task: Task, answer: str, page: FinalPage, db: sqlite3.Connection | None) -> tuple[bool, str]:
    """(success, why): every check of the task passes; `why` names the first that failed."""
    for check in task.metadata["checks"]:
        ok, why = _one(check, answer, page, db, task)
        if not ok:
            return False, why
    return True, "every check passed"
