"""WebDatasette: SiteEnv on a real third-party app, Datasette (PyPI `datasette`), serving a
seeded SQLite database of the shop's catalogue (`products`: id, name, category, brand,
price in dollars, rating), read-only (`datasette serve -i`).

Five task templates, each answered by using Datasette's UI as a person would; the SQL
editor is blocked in every task but the SQL one (its `?sql=` URLs are refused):

- facet_count: "How many Fenwick products are in the Shirts category?" (facets);
- most_expensive: "What is the most expensive product in the Bags category?" (a facet,
  then sorting by price, descending);
- cheapest_rating: "What is the rating of the cheapest Quillon product?" (the filter form,
  then sorting);
- row_brand: "Which brand makes the Misty Linen Polo?" (the filter form, then the row's page);
- sql_average: "Using the SQL editor, what is the average price ..." (the SQL editor).

Every task has the plan of `WebOracle`, which solves it in its `min_turns`; answers are
computed by running SQL on the same database.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentgym.envs.web.apps.shop_data import catalogue
from agentgym.envs.web.site import SiteEnv
from agentgym.envs.web.tasks import answer, click, select, split_tasks, type_text

__all__ = ["WebDatasetteEnv", "datasette_tasks", "seed_products"]

NO_SQL = ["[?&]sql="]
START = "/store/products"


def seed_products(db: sqlite3.Connection, seed: int) -> None:
    """The `products` table of the shop's catalogue for `seed`."""
    db.execute("create table products (id integer primary key, name text, category text, brand text, "
               "price real, rating real)")  # fmt: skip
    db.executemany(
        "insert into products values (?, ?, ?, ?, ?, ?)",
        [(p.id, p.name, p.category, p.brand, p.price / 100, p.rating) for p in catalogue(seed).products],
    )
    db.commit()


def _database(seed: int) -> Path:
    """The seeded database file of this process (written once per seed)."""
    path = Path(tempfile.gettempdir()) / f"agentgym-datasette-{seed}" / "store.db"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{id(path)}.tmp")
        db = sqlite3.connect(tmp)
        seed_products(db, seed)
        db.close()
        tmp.replace(path)
    return path


def _task(instruction: str, plan: list[dict[str, Any]], expected: Any, match: str, sql: bool = False):
    return instruction, {
        "plan": plan,
        "check": {"answer": str(expected), "match": match},
        "blocked": [] if sql else NO_SQL,
    }


def datasette_tasks(split: str, data_seed: int = 0, task_seed: int = 0) -> list[dict[str, Any]]:
    """The tasks of a split, as SiteEnv task dicts (id, instruction, start, check, plan...)."""
    db = sqlite3.connect(":memory:")
    seed_products(db, data_seed)
    rows = db.execute("select id, name, category, brand, price, rating from products order by id").fetchall()
    categories = sorted({r[2] for r in rows})
    brands = sorted({r[3] for r in rows})
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    groups["facet_count"] = [
        _task(f"How many {b} products are in the {c} category?",
              [click("link", "category"), click("link", c), click("link", "brand"), answer(str(n))], n, "number")
        for c in categories for b in brands
        if (n := sum(1 for r in rows if r[2] == c and r[3] == b))
    ]  # fmt: skip

    def top(items: list[tuple], key: int, highest: bool) -> tuple | None:
        ranked = sorted(items, key=lambda r: r[key], reverse=highest)
        return ranked[0] if len(ranked) == 1 or ranked[0][key] != ranked[1][key] else None  # no ties

    groups["most_expensive"] = [
        _task(f"What is the most expensive product in the {c} category?",
              [click("link", "category"), click("link", c), click("link", "price"), click("link", "price ▼"),
               answer(best[1])], best[1], "text")
        for c in categories if (best := top([r for r in rows if r[2] == c], 4, True))
    ]  # fmt: skip
    groups["cheapest_rating"] = [
        _task(f"What is the rating of the cheapest {b} product?",
              [select("", "brand"), type_text("textbox", "", b, submit=True), click("link", "price"),
               answer(str(best[5]))], best[5], "number")
        for b in brands if (best := top([r for r in rows if r[3] == b], 4, False))
    ]  # fmt: skip
    groups["row_brand"] = [
        _task(f"Which brand makes the {r[1]}?",
              [select("", "name"), type_text("textbox", "", r[1], submit=True), click("link", str(r[0])),
               answer(r[3])], r[3], "text")
        for r in rows
    ]  # fmt: skip
    sql_tasks = []
    for c in categories:
        for b in brands:
            query = f"select round(avg(price), 2) from products where brand = '{b}' and category = '{c}'"
            (avg,) = db.execute(query).fetchone()
            if avg is None:
                continue
            sql_tasks.append(_task(
                f"Using the SQL editor, what is the average price in dollars of the {b} products in the {c} "
                "category, rounded to the cent?",
                [click("link", "✎ View and edit SQL"), type_text("textbox", "", query), click("button", "Run SQL"),
                 answer(f"{avg:.2f}")], f"{avg:.2f}", "number", sql=True))  # fmt: skip
    groups["sql_average"] = sql_tasks
    db.close()
    out = []
    for task in split_tasks("datasette", groups, split, task_seed):
        meta = task.metadata
        out.append({
            "id": task.id, "instruction": task.instruction, "start": START, "split": split, "plan": meta["plan"],
            "check": meta["check"], "blocked": meta["blocked"], "metadata": {"template": meta["template"]},
        })  # fmt: skip
    return out


class WebDatasetteEnv(SiteEnv):
    """Datasette (a third-party app) in a real browser, on the shop's catalogue: facets, sorting, filters, SQL.

    Args:
        data_seed: the catalogue's seed.
        task_seed: how the tasks are split between train and test.
        **kwargs: `WebEnv` arguments (max_obs_chars, action_timeout_ms, max_turns...).
    """

    default_max_turns = 20

    def __init__(self, data_seed: int = 0, task_seed: int = 0, **kwargs: Any):
        if importlib.util.find_spec("datasette") is None:
            raise ImportError(
                "agentgym/WebDatasette-v0 needs Datasette: pip install 'agentgym[datasette]' (or pip install datasette)"
            )
        database = _database(data_seed)
        config = {
            "site": {
                "command": [
                    sys.executable,
                    "-m",
                    "datasette",
                    "serve",
                    "-i",
                    str(database),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                    "--setting",
                    "default_page_size",
                    "20",
                ],
                "ready": "/-/versions.json",
                "state": "read_only",  # served immutable (-i): nothing an agent does changes it
                "database": str(database),
            },
            "tasks": lambda: [t for split in ("train", "test") for t in datasette_tasks(split, data_seed, task_seed)],
        }
        super().__init__(config, data_seed=data_seed, task_seed=task_seed, **kwargs)
