"""The shop's content: a catalogue, saved cards and past orders, deterministic from a seed.

`catalogue(seed)` builds it in memory (the task generator reads it from there, cheaply);
`seed_db` writes the same content into SQLite for the server.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from functools import lru_cache

CLOTHING = ("XS", "S", "M", "L", "XL")
SHOE = ("38", "39", "40", "41", "42", "43", "44")
#: category -> (nouns, sizes offered (empty: no size option))
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Shirts": (("Shirt", "Tee", "Polo", "Blouse"), CLOTHING),
    "Trousers": (("Trousers", "Chinos", "Jeans", "Shorts"), CLOTHING),
    "Jackets": (("Jacket", "Parka", "Raincoat", "Fleece"), CLOTHING),
    "Shoes": (("Sneakers", "Boots", "Loafers", "Sandals"), SHOE),
    "Hats": (("Cap", "Beanie", "Sun Hat", "Bucket Hat"), ("S/M", "L/XL")),
    "Socks": (("Socks", "Ankle Socks", "Wool Socks", "Trail Socks"), ("S", "M", "L")),
    "Bags": (("Backpack", "Tote", "Duffel", "Satchel"), ()),
    "Kitchen": (("Mug", "Teapot", "Water Bottle", "Lunch Box"), ()),
}
ADJECTIVES = (
    "Breezy", "Classic", "Urban", "Alpine", "Coastal", "Everyday", "Vintage", "Nimble",
    "Sturdy", "Cozy", "Sleek", "Rugged", "Sunny", "Misty", "Bold", "Quiet",
)  # fmt: skip
MATERIALS = ("Cotton", "Linen", "Wool", "Denim", "Canvas", "Bamboo", "Leather", "Hemp")
BRANDS = ("Northwind", "Larkspur", "Tidewater", "Oakridge", "Fenwick", "Mirela", "Quillon", "Sabre & Co")
COLOURS = ("Black", "White", "Navy", "Red", "Green", "Grey", "Beige", "Blue", "Yellow", "Pink")
CARDS = ((1, "Visa ending in 4242"), (2, "Mastercard ending in 5454"))
SHIPPING = (("standard", "Standard (free)", 0), ("express", "Express ($9.99)", 999))
PER_CATEGORY = 15


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    category: str
    brand: str
    price: int  # cents
    rating: float
    sizes: tuple[str, ...]
    colours: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    size: str
    colour: str
    quantity: int
    price: int  # cents, each


@dataclass(frozen=True)
class Order:
    id: int
    day: str
    card_id: int
    shipping: str
    lines: tuple[OrderLine, ...]

    @property
    def total(self) -> int:
        fee = dict((k, f) for k, _, f in SHIPPING)[self.shipping]
        return sum(line.price * line.quantity for line in self.lines) + fee


@dataclass(frozen=True)
class Catalogue:
    products: tuple[Product, ...]
    orders: tuple[Order, ...]

    def product(self, product_id: int) -> Product:
        return self.products[product_id - 1]


@lru_cache(maxsize=8)
def catalogue(seed: int = 0) -> Catalogue:
    """The shop's content for `seed` (names unique, prices unique within a category)."""
    rng = random.Random(f"shop-{seed}")
    products: list[Product] = []
    names: set[str] = set()
    for category, (nouns, all_sizes) in CATEGORIES.items():
        prices: set[int] = set()
        while len(prices) < PER_CATEGORY:
            prices.add(rng.randrange(4, 120) * 100 + rng.choice((49, 95, 99)))
        for price in rng.sample(sorted(prices), PER_CATEGORY):
            while True:
                name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {rng.choice(nouns)}"
                if name not in names:
                    names.add(name)
                    break
            sizes = (tuple(s for s in all_sizes if rng.random() < 0.75) or all_sizes[:1]) if all_sizes else ()
            colours = tuple(sorted(rng.sample(COLOURS, rng.randint(2, 4)), key=COLOURS.index))
            brand = rng.choice(BRANDS)
            rating = round(rng.uniform(2.5, 5.0), 1)
            description = (
                f"A {rng.choice(('light', 'durable', 'soft', 'roomy', 'neat'))} {name.split()[-1].lower()} "
                f"by {brand}, made of {name.split()[1].lower()}."
            )
            pid = len(products) + 1
            products.append(Product(pid, name, category, brand, price, rating, sizes, colours, description))
    orders: list[Order] = []
    for i in range(6):
        lines = []
        for p in rng.sample(products, rng.randint(1, 3)):
            lines.append(
                OrderLine(
                    p.id, rng.choice(p.sizes) if p.sizes else "", rng.choice(p.colours), rng.randint(1, 3), p.price
                )
            )
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        orders.append(Order(1001 + i, day, rng.choice(CARDS)[0], rng.choice(SHIPPING)[0], tuple(lines)))
    orders.sort(key=lambda o: o.day)
    orders = [Order(1001 + i, o.day, o.card_id, o.shipping, o.lines) for i, o in enumerate(orders)]
    return Catalogue(tuple(products), tuple(orders))


SCHEMA = """
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT UNIQUE, category TEXT, brand TEXT,
    price INTEGER, rating REAL, sizes TEXT, colours TEXT, description TEXT);
CREATE TABLE cards (id INTEGER PRIMARY KEY, label TEXT);
CREATE TABLE cart_items (id INTEGER PRIMARY KEY, product_id INTEGER, size TEXT, colour TEXT, quantity INTEGER);
CREATE TABLE orders (id INTEGER PRIMARY KEY, day TEXT, card_id INTEGER, shipping TEXT, total INTEGER);
CREATE TABLE order_lines (order_id INTEGER, product_id INTEGER, size TEXT, colour TEXT, quantity INTEGER, price INTEGER);
"""


def seed_db(db: sqlite3.Connection, seed: int) -> None:
    """Create the shop's tables and insert `catalogue(seed)`."""
    cat = catalogue(seed)
    db.executescript(SCHEMA)
    db.executemany(
        "INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (
                p.id,
                p.name,
                p.category,
                p.brand,
                p.price,
                p.rating,
                ",".join(p.sizes),
                ",".join(p.colours),
                p.description,
            )
            for p in cat.products
        ],
    )
    db.executemany("INSERT INTO cards VALUES (?,?)", CARDS)
    for o in cat.orders:
        db.execute("INSERT INTO orders VALUES (?,?,?,?,?)", (o.id, o.day, o.card_id, o.shipping, o.total))
        db.executemany(
            "INSERT INTO order_lines VALUES (?,?,?,?,?,?)",
            [(o.id, x.product_id, x.size, x.colour, x.quantity, x.price) for x in o.lines],
        )
