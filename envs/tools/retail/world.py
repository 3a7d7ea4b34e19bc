"""The Retail world: a store's SQLite database, generated deterministically from a seed.

Tables: users, payment_methods, products, variants (a product's options, price and
availability), orders, order_items, payments (charges and refunds) and returns
(return and exchange requests). Money is stored in integer cents.

The seed database is built once per seed and kept as the bytes of a serialised SQLite
database (immutable); every episode deserialises its own private in-memory copy, so
nothing an episode writes reaches the seed data or another episode.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sqlite3
from functools import lru_cache

__all__ = ["SCHEMA", "build_seed", "canonical_state", "money", "open_copy", "state_hash"]

SCHEMA = """
CREATE TABLE users (
    user_id TEXT PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE, address1 TEXT NOT NULL, city TEXT NOT NULL, state TEXT NOT NULL, zip TEXT NOT NULL
);
CREATE TABLE payment_methods (
    payment_method_id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(user_id),
    kind TEXT NOT NULL CHECK (kind IN ('credit_card', 'paypal', 'gift_card')), label TEXT NOT NULL,
    balance_cents INTEGER  -- gift cards only
);
CREATE TABLE products (product_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE variants (
    item_id TEXT PRIMARY KEY, product_id TEXT NOT NULL REFERENCES products(product_id),
    options TEXT NOT NULL, price_cents INTEGER NOT NULL, available INTEGER NOT NULL
);
CREATE TABLE orders (
    order_id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(user_id), status TEXT NOT NULL
        CHECK (status IN ('pending', 'processed', 'delivered', 'cancelled', 'return requested', 'exchange requested')),
    address1 TEXT NOT NULL, city TEXT NOT NULL, state TEXT NOT NULL, zip TEXT NOT NULL,
    payment_method_id TEXT NOT NULL REFERENCES payment_methods(payment_method_id), cancel_reason TEXT
);
CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders(order_id), item_id TEXT NOT NULL REFERENCES variants(item_id),
    price_cents INTEGER NOT NULL, PRIMARY KEY (order_id, item_id)
);
CREATE TABLE payments (
    transaction_id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL REFERENCES orders(order_id),
    payment_method_id TEXT NOT NULL REFERENCES payment_methods(payment_method_id),
    kind TEXT NOT NULL CHECK (kind IN ('payment', 'refund')), amount_cents INTEGER NOT NULL
);
CREATE TABLE returns (
    return_id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL REFERENCES orders(order_id),
    kind TEXT NOT NULL CHECK (kind IN ('return', 'exchange')), item_ids TEXT NOT NULL, new_item_ids TEXT,
    payment_method_id TEXT NOT NULL REFERENCES payment_methods(payment_method_id), amount_cents INTEGER NOT NULL
);
"""

#: Columns left out of the canonical state: ids that depend only on the order of writes.
_SURROGATE_KEYS = {"transaction_id", "return_id"}

PRODUCTS: dict[str, dict[str, list[str]]] = {
    "T-Shirt": {"color": ["red", "blue", "black", "white"], "size": ["S", "M", "L", "XL"]},
    "Water Bottle": {"capacity": ["500ml", "750ml", "1000ml"], "material": ["steel", "plastic", "glass"]},
    "Running Shoes": {"color": ["black", "white", "grey"], "size": ["8", "9", "10", "11"]},
    "Backpack": {"color": ["green", "black", "navy"], "capacity": ["20L", "30L"]},
    "Desk Lamp": {"color": ["white", "black"], "brightness": ["low", "high"], "power": ["USB", "AC"]},
    "Headphones": {"type": ["over-ear", "in-ear"], "connectivity": ["wired", "wireless"], "color": ["black", "white"]},
    "Coffee Maker": {"capacity": ["4 cups", "8 cups", "12 cups"], "type": ["drip", "espresso"]},
    "Yoga Mat": {"thickness": ["4mm", "6mm", "8mm"], "color": ["purple", "blue", "green"]},
    "Notebook": {"size": ["A5", "A4"], "paper": ["lined", "dotted", "blank"]},
    "Keyboard": {
        "layout": ["full", "compact"],
        "switch": ["linear", "tactile", "clicky"],
        "backlight": ["none", "RGB"],
    },
}
_BASE_PRICE = {
    "T-Shirt": 2000,
    "Water Bottle": 2500,
    "Running Shoes": 9000,
    "Backpack": 6000,
    "Desk Lamp": 4000,
    "Headphones": 15000,
    "Coffee Maker": 11000,
    "Yoga Mat": 3500,
    "Notebook": 1200,
    "Keyboard": 13000,
}
FIRST_NAMES = [
    "Ava", "Liam", "Mia", "Noah", "Zoe", "Ethan", "Lena", "Omar", "Iris", "Yusuf",
    "Maya", "Leo", "Nora", "Ivan", "Sara", "Raj", "Emma", "Hugo", "Aria", "Chen",
]  # fmt: skip
LAST_NAMES = [
    "Garcia", "Smith", "Kowalski", "Nguyen", "Okafor", "Rossi", "Silva", "Patel", "Müller", "Kim",
    "Johnson", "Dubois", "Haddad", "Lopez", "Tanaka", "Brown",
]  # fmt: skip
CITIES = [
    ("Austin", "TX"), ("Denver", "CO"), ("Seattle", "WA"), ("Boston", "MA"), ("Phoenix", "AZ"),
    ("Portland", "OR"), ("Columbus", "OH"), ("Madison", "WI"), ("Raleigh", "NC"), ("Tampa", "FL"),
]  # fmt: skip
STREETS = ["Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm St", "Lake Dr", "Hill Rd", "River Way", "Park Ave"]
ORDER_STATUSES = (("pending", 35), ("processed", 15), ("delivered", 40), ("cancelled", 10))


def money(cents: int) -> str:
    """Cents as a dollar amount with two decimals: 12345 -> "123.45"."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _digits(rng: random.Random, n: int, used: set[str]) -> str:
    while True:
        s = str(rng.randrange(10 ** (n - 1), 10**n))
        if s not in used:
            used.add(s)
            return s


def _populate(db: sqlite3.Connection, seed: int, num_users: int) -> None:
    rng = random.Random(seed)
    used: set[str] = set()
    variants_of: dict[str, list[tuple[str, int, bool]]] = {}
    for name, dims in PRODUCTS.items():
        product_id = _digits(rng, 10, used)
        db.execute("INSERT INTO products VALUES (?, ?)", (product_id, name))
        combos = list(itertools.product(*dims.values()))
        rng.shuffle(combos)
        keep = combos[: max(3, round(len(combos) * rng.uniform(0.6, 1.0)))]
        variants_of[name] = []
        for combo in sorted(keep):
            item_id = _digits(rng, 10, used)
            price = _BASE_PRICE[name] + rng.randrange(-400, 900, 1) + rng.choice([0, 49, 99])
            available = rng.random() < 0.8
            options = json.dumps(dict(zip(dims, combo, strict=True)))
            db.execute("INSERT INTO variants VALUES (?, ?, ?, ?, ?)", (item_id, product_id, options, price, available))
            variants_of[name].append((item_id, price, available))
    names = rng.sample(list(itertools.product(FIRST_NAMES, LAST_NAMES)), num_users)
    statuses, weights = zip(*ORDER_STATUSES, strict=True)
    for first, last in names:
        user_id = f"{first}_{last}_{_digits(rng, 4, used)}".lower()
        city, state = rng.choice(CITIES)
        address = (f"{rng.randrange(10, 9999)} {rng.choice(STREETS)}", city, state, _digits(rng, 5, used))
        email = f"{first}.{last}{rng.randrange(10, 99)}@example.com".lower()
        db.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (user_id, first, last, email, *address))
        methods = []
        for kind in rng.sample(["credit_card", "paypal", "gift_card"], rng.randint(1, 3)):
            method_id = f"{kind}_{_digits(rng, 7, used)}"
            if kind == "credit_card":
                label = f"{rng.choice(['visa', 'mastercard', 'amex'])} ending in {rng.randrange(1000, 9999)}"
            else:
                label = "paypal account" if kind == "paypal" else "gift card"
            balance = rng.randrange(0, 40000) if kind == "gift_card" else None
            db.execute("INSERT INTO payment_methods VALUES (?, ?, ?, ?, ?)", (method_id, user_id, kind, label, balance))
            methods.append(method_id)
        for _ in range(rng.randint(1, 4)):
            order_id = f"#W{_digits(rng, 7, used)}"
            status = rng.choices(statuses, weights)[0]
            method_id = rng.choice(methods)
            reason = rng.choice(["no longer needed", "ordered by mistake"]) if status == "cancelled" else None
            db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (order_id, user_id, status, *address, method_id, reason),
            )
            total = 0
            for product in rng.sample(list(PRODUCTS), rng.randint(1, 4)):
                item_id, price, _ = rng.choice(variants_of[product])
                db.execute("INSERT INTO order_items VALUES (?, ?, ?)", (order_id, item_id, price))
                total += price
            db.execute(
                "INSERT INTO payments (order_id, payment_method_id, kind, amount_cents) VALUES (?, ?, 'payment', ?)",
                (order_id, method_id, total),
            )
            if status == "cancelled":
                db.execute(
                    "INSERT INTO payments (order_id, payment_method_id, kind, amount_cents) VALUES (?, ?, 'refund', ?)",
                    (order_id, method_id, total),
                )


@lru_cache(maxsize=8)
def build_seed(seed: int = 0, num_users: int = 80) -> bytes:
    """The seed database of a world, serialised (the same bytes for the same arguments)."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        with db:
            _populate(db, seed, num_users)
        return db.serialize()
    finally:
        db.close()


def open_copy(seed_bytes: bytes) -> sqlite3.Connection:
    """A private in-memory copy of a seed database, usable from any thread."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.deserialize(seed_bytes)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    return db


def canonical_state(db: sqlite3.Connection) -> dict[str, list[list]]:
    """Every table's rows, sorted, without surrogate ids: equal for equal stores."""
    out = {}
    tables = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    for table in sorted(tables):
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})") if r[1] not in _SURROGATE_KEYS]
        order = ", ".join(str(i + 1) for i in range(len(cols)))
        out[table] = [list(r) for r in db.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")]
    return out


def state_hash(db: sqlite3.Connection) -> str:
    """SHA-256 of the canonical state."""
    blob = json.dumps(canonical_state(db), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()
