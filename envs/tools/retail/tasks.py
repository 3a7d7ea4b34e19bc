"""Retail tasks, generated from templates over the seeded store.

Each task is one customer message with a gold action sequence (the tool calls a good
agent makes, reads included) and the facts the reply must state. Its expected final
state is the state after replaying the gold actions on a fresh copy of the store.

Templates: cancel a pending order, change its address, modify its items; return or
exchange items of a delivered order; the status and total of an order; a product's
price; and a request the rules forbid (cancelling a delivered order), whose expected
state is the unchanged store.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from agentgym.envs.tools.retail.store import Session
from agentgym.envs.tools.retail.world import CITIES, STREETS, build_seed, money, open_copy, state_hash

from agentgym.env import Task

__all__ = ["TEMPLATES", "expected_hash", "gold_actions", "make_tasks"]

Gold = list[tuple[str, dict[str, Any]]]
Made = tuple[str, Gold, list[str]]  # (customer message, gold actions, facts the reply must state)
Template = Callable[[sqlite3.Connection, random.Random, sqlite3.Row], "Made | None"]
_REASONS = {"no longer needed": "I no longer need it", "ordered by mistake": "I ordered it by mistake"}


def _identify(db: sqlite3.Connection, rng: random.Random, user_id: str) -> tuple[str, tuple[str, dict[str, Any]]]:
    u = db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
    if rng.random() < 0.5:
        return f"My email is {u['email']}.", ("find_user_id_by_email", {"email": u["email"]})
    who = f"I'm {u['first_name']} {u['last_name']}, zip code {u['zip']}."
    return who, (
        "find_user_id_by_name_zip",
        {"first_name": u["first_name"], "last_name": u["last_name"], "zip": u["zip"]},
    )


def _items(db: sqlite3.Connection, order_id: str) -> list[sqlite3.Row]:
    return db.execute(
        "SELECT oi.item_id, oi.price_cents, v.options, v.product_id, p.name FROM order_items oi "
        "JOIN variants v ON v.item_id = oi.item_id JOIN products p ON p.product_id = v.product_id "
        "WHERE oi.order_id = ? ORDER BY p.name",
        (order_id,),
    ).fetchall()


def _describe(options: str) -> str:
    return ", ".join(f"{k} {v}" for k, v in json.loads(options).items())


def _swap_candidate(
    db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row
) -> tuple[sqlite3.Row, sqlite3.Row] | None:
    """An item of the order and another available variant of its product that the payment method can cover."""
    choices = []
    for item in _items(db, order["order_id"]):
        others = db.execute(
            "SELECT * FROM variants WHERE product_id = ? AND item_id != ? AND available = 1 ORDER BY item_id",
            (item["product_id"], item["item_id"]),
        ).fetchall()
        choices += [(item, o) for o in others]
    if not choices:
        return None
    item, new = rng.choice(choices)
    method = db.execute(
        "SELECT * FROM payment_methods WHERE payment_method_id = ?", (order["payment_method_id"],)
    ).fetchone()
    if method["kind"] == "gift_card" and new["price_cents"] - item["price_cents"] > method["balance_cents"]:
        return None
    return item, new


def cancel(db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row) -> Made | None:
    if order["status"] != "pending":
        return None
    who, ident = _identify(db, rng, order["user_id"])
    reason = rng.choice(list(_REASONS))
    total = sum(i["price_cents"] for i in _items(db, order["order_id"]))
    text = f"Hi, {who} Please cancel my order {order['order_id']}: {_REASONS[reason]}. How much will be refunded?"
    return (
        text,
        [
            ident,
            ("get_order_details", {"order_id": order["order_id"]}),
            ("cancel_pending_order", {"order_id": order["order_id"], "reason": reason}),
        ],
        [money(total)],
    )


def change_address(db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row) -> Made | None:
    if order["status"] != "pending":
        return None
    who, ident = _identify(db, rng, order["user_id"])
    city, state = rng.choice(CITIES)
    address = {
        "address1": f"{rng.randrange(10, 9999)} {rng.choice(STREETS)}",
        "city": city,
        "state": state,
        "zip": f"{rng.randrange(10000, 99999)}",
    }
    where = f"{address['address1']}, {city}, {state} {address['zip']}"
    text = f"Hello. {who} I moved: please ship my order {order['order_id']} to {where} instead."
    return text, [ident, ("modify_pending_order_address", {"order_id": order["order_id"], **address})], []


def _swap(
    db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row, status: str, tool: str, ask: str
) -> Made | None:
    """Swap one item of an order for another variant of the same product (modify or exchange).

    `ask` is the request, with {who}, {order}, {name}, {old} and {new} to fill in."""
    if order["status"] != status or (pair := _swap_candidate(db, rng, order)) is None:
        return None
    item, new = pair
    who, ident = _identify(db, rng, order["user_id"])
    text = ask.format(
        who=who,
        order=order["order_id"],
        name=item["name"],
        old=_describe(item["options"]),
        new=_describe(new["options"]),
    )
    gold = [
        ident,
        ("get_order_details", {"order_id": order["order_id"]}),
        ("get_product_details", {"product_id": item["product_id"]}),
        (tool, {"order_id": order["order_id"], "item_ids": [item["item_id"]], "new_item_ids": [new["item_id"]]}),
    ]
    return text, gold, [money(abs(new["price_cents"] - item["price_cents"]))]


def modify_items(db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row) -> Made | None:
    ask = "Hi! {who} In my order {order}, could you change the {name} ({old}) to the one with {new}? What is the price difference?"
    return _swap(db, rng, order, "pending", "modify_pending_order_items", ask)


def return_items(db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row) -> Made | None:
    if order["status"] != "delivered":
        return None
    who, ident = _identify(db, rng, order["user_id"])
    items = _items(db, order["order_id"])
    chosen = sorted(rng.sample(items, rng.randint(1, min(2, len(items)))), key=lambda r: r["name"])
    names = " and the ".join(i["name"] for i in chosen)
    text = f"{who} I want to return the {names} from order {order['order_id']}. How much will I get back?"
    args = {
        "order_id": order["order_id"],
        "item_ids": [i["item_id"] for i in chosen],
        "payment_method_id": order["payment_method_id"],
    }
    gold = [ident, ("get_order_details", {"order_id": order["order_id"]}), ("return_delivered_order_items", args)]
    return text, gold, [money(sum(i["price_cents"] for i in chosen))]


def exchange(db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row) -> Made | None:
    ask = "{who} I received order {order}. I'd like to exchange the {name} ({old}) for the one with {new}. What's the price difference?"
    return _swap(db, rng, order, "delivered", "exchange_delivered_order_items", ask)


def order_status(db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row) -> Made | None:
    who, ident = _identify(db, rng, order["user_id"])
    total = sum(i["price_cents"] for i in _items(db, order["order_id"]))
    text = f"{who} What is the status of my order {order['order_id']}, and what was its total?"
    return text, [ident, ("get_order_details", {"order_id": order["order_id"]})], [order["status"], money(total)]


def product_price(db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row) -> Made | None:
    item = rng.choice(_items(db, order["order_id"]))
    price = db.execute("SELECT price_cents FROM variants WHERE item_id = ?", (item["item_id"],)).fetchone()[0]
    text = f"How much does the {item['name']} with {_describe(item['options'])} cost right now?"
    return (
        text,
        [("list_product_types", {}), ("get_product_details", {"product_id": item["product_id"]})],
        [money(price)],
    )


def refuse_cancel(db: sqlite3.Connection, rng: random.Random, order: sqlite3.Row) -> Made | None:
    if order["status"] != "delivered":
        return None
    who, ident = _identify(db, rng, order["user_id"])
    text = f"{who} Cancel my order {order['order_id']} right now, I no longer need it."
    return text, [ident, ("get_order_details", {"order_id": order["order_id"]})], ["delivered"]


#: name -> (template, difficulty)
TEMPLATES: dict[str, tuple[Template, str]] = {
    "cancel": (cancel, "medium"),
    "change_address": (change_address, "medium"),
    "modify_items": (modify_items, "hard"),
    "return": (return_items, "medium"),
    "exchange": (exchange, "hard"),
    "order_status": (order_status, "easy"),
    "product_price": (product_price, "easy"),
    "refuse_cancel": (refuse_cancel, "medium"),
}


@lru_cache(maxsize=4096)
def _expected_hash(seed: int, num_users: int, gold_json: str) -> str:
    db = open_copy(build_seed(seed, num_users))
    try:
        session = Session(db)
        for name, arguments in json.loads(gold_json):
            session.run(name, arguments)
        return state_hash(db)
    finally:
        db.close()


def expected_hash(task: Task) -> str:
    """The state hash after replaying the task's gold actions on a fresh store (cached)."""
    m = task.metadata
    return _expected_hash(m["seed"], m["num_users"], json.dumps(m["gold"]))


def gold_actions(task: Task) -> list[str]:
    """The agent messages that replay the task's gold: one message per tool call, then a reply
    stating the required facts. Scores 1.0 on every task, in exactly `task.min_turns` turns."""
    calls = [f"<tool_call>{json.dumps({'name': n, 'arguments': a})}</tool_call>" for n, a in task.metadata["gold"]]
    facts = ", ".join(task.metadata["facts"]) or "done"
    return [*calls, f"<answer>Your request is handled: {facts}.</answer>"]


def make_tasks(split: str, seed: int, num_users: int, per_template: int, test_fraction: float) -> list[Task]:
    """Up to `per_template` tasks of each template, each in "test" with probability
    `test_fraction` (seeded), the others in "train"."""
    db = open_copy(build_seed(seed, num_users))
    try:
        orders = db.execute("SELECT * FROM orders ORDER BY order_id").fetchall()
        tasks = []
        for name, (template, difficulty) in TEMPLATES.items():
            rng = random.Random(f"{seed}-{name}")
            candidates = orders[:]
            rng.shuffle(candidates)
            made = 0
            for order in candidates:
                if made == per_template:
                    break
                made_task = template(db, rng, order)
                if made_task is None:
                    continue
                made += 1
                in_test = rng.random() < test_fraction
                if ("test" if in_test else "train") != split:
                    continue
                text, gold, facts = made_task
                tasks.append(
                    Task(
                        id=f"retail-{name}-{order['order_id'].lstrip('#')}",
                        instruction=text,
                        split=split,
                        min_turns=len(gold) + 1,
                        difficulty=difficulty,
                        metadata={"template": name, "gold": gold, "facts": facts, "seed": seed, "num_users": num_users},
                    )
                )
        return tasks
    finally:
        db.close()
