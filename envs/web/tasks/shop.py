"""Shop tasks: find prices, cheapest matches, counts and past orders; buy things.

Information tasks are checked against the answer; purchases against the orders table
(exactly one new order, with exactly the asked lines, card and shipping).
"""

from __future__ import annotations

import random
import sqlite3
from functools import lru_cache
from typing import Any

from agentgym.envs.web.apps.shop_data import CARDS, CATEGORIES, COLOURS, SHIPPING, Product, catalogue
from agentgym.envs.web.tasks import answer, check_answer, click, dollars, select, split_tasks, type_text

from agentgym.env import Task

_CARD_NAMES = {1: "Visa card", 2: "Mastercard"}
_NUMBERS = {1: "one", 2: "two", 3: "three"}
_SORT_LOW = "Price: low to high"


def _filter_steps(category: str = "", colour: str = "", max_price: int | None = None, sort: str = "") -> list:
    steps = []
    if category:
        steps.append(select("Category", category))
    if colour:
        steps.append(select("Colour", colour))
    if max_price is not None:
        steps.append(type_text("textbox", "Max price ($)", str(max_price)))
    if sort:
        steps.append(select("Sort by", sort))
    return [*steps, click("button", "Apply")]


def _add_to_cart(p: Product, size: str, colour: str, quantity: int, found: bool = False) -> list:
    steps = [] if found else [type_text("searchbox", "Search products", p.name, submit=True)]
    steps.append(click("link", p.name))
    if p.sizes:
        steps.append(select("Size", size))
    steps.append(select("Colour", colour))
    if quantity != 1:
        steps.append(type_text("spinbutton", "Quantity", str(quantity)))
    return [*steps, click("button", "Add to cart")]


def _checkout(card_id: int, shipping: str) -> list:
    steps = [click("link", "Proceed to checkout"), select("Payment", dict(CARDS)[card_id])]
    if shipping != "standard":
        steps.append(select("Shipping", next(label for k, label, _ in SHIPPING if k == shipping)))
    return [*steps, click("button", "Place order"), answer("done")]


def _purchase_text(items: list[tuple[Product, str, str, int]], card_id: int, shipping: str) -> str:
    parts = []
    for p, size, colour, qty in items:
        part = f"{_NUMBERS[qty]} {p.name}" + (f" in size {size}" if p.sizes else "") + f" in {colour}"
        parts.append(part)
    ship = "express shipping" if shipping == "express" else "standard shipping"
    return f"Buy {' and '.join(parts)}, with {ship}, and pay with the saved {_CARD_NAMES[card_id]}."


def _purchase(items: list[tuple[Product, str, str, int]], card_id: int, shipping: str) -> dict[str, Any]:
    lines = sorted([p.id, size if p.sizes else "", colour, qty] for p, size, colour, qty in items)
    return {"kind": "state", "expect": {"lines": lines, "card_id": card_id, "shipping": shipping}}


@lru_cache(maxsize=8)
def _instances(seed: int) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    cat = catalogue(seed)
    rng = random.Random(f"shop-tasks-{seed}")
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {k: [] for k in ("price", "cheapest", "count", "order_total",
                                                                      "order_colour", "buy_one", "buy_many", "buy_cheapest")}  # fmt: skip
    by_cat = {c: [p for p in cat.products if p.category == c] for c in CATEGORIES}
    for p in cat.products:
        plan = [type_text("searchbox", "Search products", p.name, submit=True), answer("$" + dollars(p.price))]
        groups["price"].append((f"What is the price of the {p.name}? Answer with the price, like $12.34.",
                                {"kind": "info", "answer": dollars(p.price), "answer_type": "money", "plan": plan}))  # fmt: skip
    for c, products in by_cat.items():
        for colour in COLOURS:
            match = sorted((p for p in products if colour in p.colours), key=lambda p: p.price)
            if len(match) < 2:
                continue
            limit = (match[min(2, len(match) - 1)].price // 100) + 1
            best = match[0]
            plan = [*_filter_steps(c, colour, limit, _SORT_LOW), answer(best.name)]
            text = f"What is the cheapest product in the {c} category that comes in {colour} and costs at most ${limit}? Answer with its name."
            groups["cheapest"].append(
                (text, {"kind": "info", "answer": best.name, "answer_type": "name", "plan": plan})
            )
            sizes = CATEGORIES[c][1]
            if sizes and best.sizes:
                size = rng.choice(best.sizes)
                card, ship = rng.choice(CARDS)[0], rng.choice(SHIPPING)[0]
                plan = [*_filter_steps(c, colour, limit, _SORT_LOW), *_add_to_cart(best, size, colour, 1, found=True)]
                plan += _checkout(card, ship)
                text = (
                    f"Find the cheapest product in the {c} category that comes in {colour} and costs at most ${limit}, "
                    f"and buy one in size {size} in {colour}, with {'express' if ship == 'express' else 'standard'} "
                    f"shipping, paying with the saved {_CARD_NAMES[card]}."
                )
                groups["buy_cheapest"].append(
                    (text, {**_purchase([(best, size, colour, 1)], card, ship), "plan": plan})
                )
        for limit in (20, 40, 60, 90):
            n = sum(p.price <= limit * 100 for p in products)
            plan = [*_filter_steps(c, max_price=limit), answer(str(n))]
            text = f"How many products in the {c} category cost at most ${limit}? Answer with a number."
            groups["count"].append((text, {"kind": "info", "answer": str(n), "answer_type": "int", "plan": plan}))
    for o in cat.orders:
        plan = [click("link", "Orders"), answer("$" + dollars(o.total))]
        groups["order_total"].append((f"How much did order #{o.id} cost in total? Answer with the amount, like $12.34.",
                                      {"kind": "info", "answer": dollars(o.total), "answer_type": "money", "plan": plan}))  # fmt: skip
        for line in o.lines:
            name = cat.product(line.product_id).name
            plan = [click("link", "Orders"), click("link", f"Order #{o.id}"), answer(line.colour)]
            groups["order_colour"].append((f"In which colour did you buy the {name} in order #{o.id}?",
                                           {"kind": "info", "answer": line.colour, "answer_type": "name", "plan": plan}))  # fmt: skip
    for many in (1, 2, 2, 3):
        for _ in range(60):
            items = []
            for p in rng.sample(cat.products, many):
                items.append(
                    (p, rng.choice(p.sizes) if p.sizes else "", rng.choice(p.colours), rng.choice((1, 1, 2, 3)))
                )
            card, ship = rng.choice(CARDS)[0], rng.choice(SHIPPING)[0]
            plan = [step for p, size, colour, qty in items for step in _add_to_cart(p, size, colour, qty)]
            plan += _checkout(card, ship)
            meta = {**_purchase(items, card, ship), "plan": plan}
            groups["buy_one" if many == 1 else "buy_many"].append((_purchase_text(items, card, ship), meta))
    return groups


def make_tasks(split: str, data_seed: int, task_seed: int) -> list[Task]:
    """The shop tasks of `split` for the catalogue of `data_seed`."""
    return split_tasks("shop", _instances(data_seed), split, task_seed)


def grade(task: Task, given: str, db: sqlite3.Connection, data_seed: int) -> tuple[bool, str]:
    """(success, reason) of an episode, from the answer or from the database."""
    meta = task.metadata
    if meta["kind"] == "info":
        return check_answer(meta["answer"], meta["answer_type"], given)
    seeded = max(o.id for o in catalogue(data_seed).orders)
    new = db.execute("SELECT id, card_id, shipping FROM orders WHERE id > ?", (seeded,)).fetchall()
    if len(new) != 1:
        return False, f"expected exactly one new order, found {len(new)}"
    oid, card_id, shipping = new[0]
    lines = sorted(
        list(r)
        for r in db.execute("SELECT product_id, size, colour, quantity FROM order_lines WHERE order_id = ?", (oid,))
    )
    want = meta["expect"]
    if lines != want["lines"]:
        return False, "the order does not hold exactly the asked products, options and quantities"
    if card_id != want["card_id"] or shipping != want["shipping"]:
        return False, "the order was paid with the wrong card or shipped the wrong way"
    return True, "the order matches"
