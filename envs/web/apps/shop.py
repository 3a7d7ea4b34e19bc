"""The shop app: search with filters and sorting, product pages with options, cart,
checkout with a saved card, and order history. Server-rendered forms; links and forms
update the page in place (`html.IN_PAGE`)."""

from __future__ import annotations

import sqlite3
import urllib.parse

from agentgym.envs.web.apps.shop_data import CATEGORIES, COLOURS, SHIPPING, seed_db
from agentgym.envs.web.html import esc, field, layout, link, money, post_button, table
from agentgym.envs.web.server import Request, Response, Router

SITE = "Lark Shop"
PAGE_SIZE = 20
SORTS = (("relevance", "Relevance"), ("price_asc", "Price: low to high"), ("price_desc", "Price: high to low"),
         ("rating", "Rating: high to low"))  # fmt: skip
_ORDER_BY = {"relevance": "id", "price_asc": "price, id", "price_desc": "price DESC, id", "rating": "rating DESC, id"}

router = Router()


def _nav(db: sqlite3.Connection) -> str:
    count = db.execute("SELECT COALESCE(SUM(quantity), 0) FROM cart_items").fetchone()[0]
    search = '<form method="get" action="/search" class="inline">' + field("Search products", "q", "search")
    return (
        link("/", "Home")
        + link("/cart", f"Cart ({count})")
        + link("/orders", "Orders")
        + search
        + "<button>Go</button></form>"
    )


def _page(req: Request, title: str, body: str) -> Response:
    # An outside link, as real sites have: the browser blocks it, and the agent must cope.
    footer = link("https://help.larkshop.example/", "Help centre")
    return Response(layout(SITE, title, _nav(req.db), body, req.query.get("msg", ""), footer))


def _search_form(q: str = "", category: str = "", colour: str = "", max_price: str = "", sort: str = "") -> str:
    cats = [("", "All categories"), *((c, c) for c in CATEGORIES)]
    cols = [("", "Any colour"), *((c, c) for c in COLOURS)]
    return (
        '<form method="get" action="/search" role="search">'
        + field("Keywords", "q", "search", q)
        + field("Category", "category", "select", category, cats)
        + field("Colour", "colour", "select", colour, cols)
        + field("Max price ($)", "max_price", "text", max_price)
        + field("Sort by", "sort", "select", sort, SORTS)
        + "<button>Apply</button></form>"
    )


@router.route("GET", "/")
def home(req: Request) -> Response:
    cats = "".join(f"<li>{link('/search?category=' + urllib.parse.quote(c), c)}</li>" for c in CATEGORIES)
    body = _search_form() + f"<h2>Categories</h2><ul>{cats}</ul>"
    return _page(req, "Welcome", body)


@router.route("GET", "/search")
def search(req: Request) -> Response:
    q, category, colour = req.arg("q"), req.arg("category"), req.arg("colour")
    max_price, sort = req.arg("max_price").lstrip("$"), req.arg("sort", "relevance")
    where, args = [], []
    for word in q.lower().split():
        where.append("lower(name || ' ' || brand || ' ' || category) LIKE ?")
        args.append(f"%{word}%")
    if category:
        where.append("category = ?")
        args.append(category)
    if colour:
        where.append("(',' || colours || ',') LIKE ?")
        args.append(f"%,{colour},%")
    error = ""
    if max_price:
        try:
            where.append("price <= ?")
            args.append(round(float(max_price) * 100))
        except ValueError:
            where.pop()
            error = f"<p role='alert'>Max price must be a number, got {esc(max_price)}.</p>"
    sql = "SELECT * FROM products" + (" WHERE " + " AND ".join(where) if where else "")
    rows = req.db.execute(f"{sql} ORDER BY {_ORDER_BY.get(sort, 'id')}", args).fetchall()
    page = max(int(req.arg("page", "1")) if req.arg("page", "1").isdigit() else 1, 1)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    cells = [
        [link(f"/product/{r['id']}", r["name"]), esc(r["brand"]), money(r["price"]), f"{r['rating']:.1f}"]
        for r in shown
    ]
    body = _search_form(q, category, colour, req.arg("max_price"), sort) + error
    body += f"<p>{len(rows)} results" + (f", page {page}" if len(rows) > PAGE_SIZE else "") + "</p>"
    body += table(("Product", "Brand", "Price", "Rating"), cells) if shown else "<p>No products match.</p>"
    if page * PAGE_SIZE < len(rows):
        body += link("/search?" + urllib.parse.urlencode({**req.query, "page": page + 1}), "Next page")
    return _page(req, "Search results", body)


@router.route("GET", r"/product/(\d+)")
def product(req: Request, pid: str) -> Response:
    p = req.db.execute("SELECT * FROM products WHERE id = ?", (int(pid),)).fetchone()
    if p is None:
        return Response(layout(SITE, "Not found", _nav(req.db), "<p>No such product.</p>"), 404)
    sizes = [s for s in p["sizes"].split(",") if s]
    form = f'<form method="post" action="/cart/add"><input type="hidden" name="product_id" value="{p["id"]}">'
    if sizes:
        form += field("Size", "size", "select", "", [("", "Choose a size"), *((s, s) for s in sizes)])
    form += field(
        "Colour", "colour", "select", "", [("", "Choose a colour"), *((c, c) for c in p["colours"].split(","))]
    )
    form += field("Quantity", "quantity", "number", "1") + "<button>Add to cart</button></form>"
    facts = f"<p>Price: {money(p['price'])}</p><p>Brand: {esc(p['brand'])}</p><p>Category: {esc(p['category'])}</p>"
    facts += f"<p>Rating: {p['rating']:.1f} out of 5</p><p>{esc(p['description'])}</p>"
    return _page(req, p["name"], facts + form)


@router.route("POST", "/cart/add")
def cart_add(req: Request) -> Response:
    p = req.db.execute("SELECT * FROM products WHERE id = ?", (int(req.arg("product_id", "0") or 0),)).fetchone()
    if p is None:
        return Response.redirect("/?msg=" + urllib.parse.quote("That product does not exist."))
    back = f"/product/{p['id']}?msg="
    size, colour, quantity = req.arg("size"), req.arg("colour"), req.arg("quantity", "1")
    sizes = [s for s in p["sizes"].split(",") if s]
    if sizes and size not in sizes:
        return Response.redirect(back + urllib.parse.quote("Please choose a size."))
    if colour not in p["colours"].split(","):
        return Response.redirect(back + urllib.parse.quote("Please choose a colour."))
    if not quantity.isdigit() or not 1 <= int(quantity) <= 20:
        return Response.redirect(back + urllib.parse.quote("Quantity must be a whole number from 1 to 20."))
    req.db.execute(
        "INSERT INTO cart_items (product_id, size, colour, quantity) VALUES (?,?,?,?)",
        (p["id"], size if sizes else "", colour, int(quantity)),
    )
    return Response.redirect("/cart?msg=" + urllib.parse.quote(f"Added {quantity} × {p['name']} to the cart."))


def _cart_rows(db: sqlite3.Connection) -> list[sqlite3.Row]:
    return db.execute(
        "SELECT c.*, p.name, p.price FROM cart_items c JOIN products p ON p.id = c.product_id ORDER BY c.id"
    ).fetchall()


@router.route("GET", "/cart")
def cart(req: Request) -> Response:
    rows = _cart_rows(req.db)
    if not rows:
        return _page(req, "Your cart", "<p>Your cart is empty.</p>")
    cells = [
        [esc(r["name"]), esc(r["size"] or "-"), esc(r["colour"]), str(r["quantity"]), money(r["price"] * r["quantity"]),
         post_button("/cart/remove", f"Remove {r['name']}", item_id=str(r["id"]))]
        for r in rows
    ]  # fmt: skip
    subtotal = sum(r["price"] * r["quantity"] for r in rows)
    body = table(("Product", "Size", "Colour", "Quantity", "Price", ""), cells)
    body += f"<p>Subtotal: {money(subtotal)}</p>" + link("/checkout", "Proceed to checkout")
    return _page(req, "Your cart", body)


@router.route("POST", "/cart/remove")
def cart_remove(req: Request) -> Response:
    req.db.execute("DELETE FROM cart_items WHERE id = ?", (req.arg("item_id"),))
    return Response.redirect("/cart?msg=" + urllib.parse.quote("Item removed."))


@router.route("GET", "/checkout")
def checkout(req: Request) -> Response:
    rows = _cart_rows(req.db)
    if not rows:
        return _page(req, "Checkout", "<p>Your cart is empty.</p>")
    cards = [(str(c["id"]), c["label"]) for c in req.db.execute("SELECT * FROM cards ORDER BY id")]
    subtotal = sum(r["price"] * r["quantity"] for r in rows)
    items = "".join(f"<li>{r['quantity']} × {esc(r['name'])}</li>" for r in rows)
    form = '<form method="post" action="/checkout">'
    form += field("Payment", "card_id", "select", "", [("", "Choose a saved card"), *cards])
    form += field("Shipping", "shipping", "select", "standard", [(k, label) for k, label, _ in SHIPPING])
    form += "<button>Place order</button></form>"
    return _page(req, "Checkout", f"<ul>{items}</ul><p>Subtotal: {money(subtotal)}</p>{form}")


@router.route("POST", "/checkout")
def place_order(req: Request) -> Response:
    rows = _cart_rows(req.db)
    card = req.db.execute("SELECT id FROM cards WHERE id = ?", (req.arg("card_id") or "0",)).fetchone()
    fees = {k: fee for k, _, fee in SHIPPING}
    if not rows:
        return Response.redirect("/cart?msg=" + urllib.parse.quote("Your cart is empty."))
    if card is None or req.arg("shipping") not in fees:
        return Response.redirect(
            "/checkout?msg=" + urllib.parse.quote("Please choose a saved card and a shipping method.")
        )
    total = sum(r["price"] * r["quantity"] for r in rows) + fees[req.arg("shipping")]
    cur = req.db.execute(
        "INSERT INTO orders (day, card_id, shipping, total) VALUES (date('now'), ?, ?, ?)",
        (card["id"], req.arg("shipping"), total),
    )
    req.db.executemany(
        "INSERT INTO order_lines VALUES (?,?,?,?,?,?)",
        [(cur.lastrowid, r["product_id"], r["size"], r["colour"], r["quantity"], r["price"]) for r in rows],
    )
    req.db.execute("DELETE FROM cart_items")
    return Response.redirect(f"/orders/{cur.lastrowid}?msg=" + urllib.parse.quote(f"Order #{cur.lastrowid} placed."))


@router.route("GET", "/orders")
def orders(req: Request) -> Response:
    rows = req.db.execute("SELECT * FROM orders ORDER BY id DESC").fetchall()
    cells = [[link(f"/orders/{o['id']}", f"Order #{o['id']}"), esc(o["day"]), money(o["total"])] for o in rows]
    return _page(req, "Your orders", table(("Order", "Date", "Total"), cells) if rows else "<p>No orders yet.</p>")


@router.route("GET", r"/orders/(\d+)")
def order(req: Request, oid: str) -> Response:
    o = req.db.execute(
        "SELECT o.*, c.label FROM orders o JOIN cards c ON c.id = o.card_id WHERE o.id = ?", (int(oid),)
    ).fetchone()
    if o is None:
        return Response(layout(SITE, "Not found", _nav(req.db), "<p>No such order.</p>"), 404)
    lines = req.db.execute(
        "SELECT l.*, p.name FROM order_lines l JOIN products p ON p.id = l.product_id WHERE order_id = ?", (o["id"],)
    ).fetchall()
    cells = [[link(f"/product/{x['product_id']}", x["name"]), esc(x["size"] or "-"), esc(x["colour"]),
              str(x["quantity"]), money(x["price"])] for x in lines]  # fmt: skip
    shipping = dict((k, label) for k, label, _ in SHIPPING)[o["shipping"]]
    body = f"<p>Date: {esc(o['day'])}</p><p>Paid with: {esc(o['label'])}</p><p>Shipping: {esc(shipping)}</p>"
    body += table(("Product", "Size", "Colour", "Quantity", "Price each"), cells) + f"<p>Total: {money(o['total'])}</p>"
    return _page(req, f"Order #{o['id']}", body)


class ShopApp:
    """The shop, as an `App` for the server."""

    name = "shop"

    def seed(self, db: sqlite3.Connection, data_seed: int) -> None:
        seed_db(db, data_seed)

    def handle(self, req: Request) -> Response:
        return router.dispatch(req)
