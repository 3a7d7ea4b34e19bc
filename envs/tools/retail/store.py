"""The Retail store's tools: typed actions on the database that enforce the store's rules.

Rules (each broken one is a `ToolError` that says which rule and what to do instead):

- identity first: no account, order or write action until the customer has been found
  by email or by name and zip code; only the verified customer's own account and orders;
- only pending orders can be cancelled or have their address or items modified;
- only delivered orders can have items returned or exchanged, once per order;
- refunds go to the order's original payment method;
- an item can only be exchanged or modified for another available variant of the
  same product; a gift card must cover any price difference it pays.

`RetailTools` is a mixin: the env and the gold-action replay (`Session`) share it, so
the expected state of a task is computed by exactly the code the agent calls.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Literal

from agentgym.envs.tools.retail.world import money

from agentgym.tool_env import ToolError
from agentgym.tools import tool

__all__ = ["RetailTools", "Session"]


class RetailTools:
    """The store's tools. Needs `self.db` (a connection) and `self.user_id` (the verified customer or None)."""

    db: sqlite3.Connection
    user_id: str | None

    # ------------------------------------------------------------ helpers

    def _require_user(self) -> str:
        if self.user_id is None:
            raise ToolError(
                "the customer's identity is not verified: first find their user id with "
                "find_user_id_by_email or find_user_id_by_name_zip"
            )
        return self.user_id

    def _order(self, order_id: str) -> sqlite3.Row:
        user_id = self._require_user()
        row = self.db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id.strip(),)).fetchone()
        if row is None:
            raise ToolError(f"no order {order_id!r}; order ids look like '#W1234567'")
        if row["user_id"] != user_id:
            raise ToolError(f"order {order_id} does not belong to the verified customer {user_id}")
        return row

    def _require_status(self, order: sqlite3.Row, status: str, action: str) -> None:
        if order["status"] != status:
            raise ToolError(f"order {order['order_id']} is {order['status']!r}: only {status} orders can {action}")

    def _items(self, order_id: str) -> dict[str, int]:
        rows = self.db.execute("SELECT item_id, price_cents FROM order_items WHERE order_id = ?", (order_id,))
        return {r["item_id"]: r["price_cents"] for r in rows}

    def _check_items(self, order_id: str, item_ids: list[str]) -> dict[str, int]:
        items = self._items(order_id)
        if not item_ids:
            raise ToolError("item_ids is empty: give the item ids (from get_order_details) to act on")
        if len(set(item_ids)) != len(item_ids):
            raise ToolError("item_ids lists an item twice")
        missing = [i for i in item_ids if i not in items]
        if missing:
            raise ToolError(f"items {missing} are not in order {order_id}; its items are {sorted(items)}")
        return {i: items[i] for i in item_ids}

    def _swap(self, order_id: str, item_ids: list[str], new_item_ids: list[str]) -> int:
        """Check an exchange/modification of items; return the price difference (new - old) in cents."""
        old = self._check_items(order_id, item_ids)
        if len(new_item_ids) != len(item_ids):
            raise ToolError(
                f"give one new item per item: {len(item_ids)} item_ids but {len(new_item_ids)} new_item_ids"
            )
        diff = 0
        for item_id, new_id in zip(item_ids, new_item_ids, strict=True):
            new = self.db.execute("SELECT * FROM variants WHERE item_id = ?", (new_id,)).fetchone()
            if new is None:
                raise ToolError(f"no item {new_id!r}; find item ids with get_product_details")
            product = self.db.execute("SELECT product_id FROM variants WHERE item_id = ?", (item_id,)).fetchone()
            if new["product_id"] != product["product_id"]:
                raise ToolError(
                    f"item {new_id} is a different product than {item_id}: items can only be swapped within the same product"
                )
            if new_id == item_id:
                raise ToolError(f"item {new_id} is the item already in the order: choose a different variant")
            if not new["available"]:
                raise ToolError(f"item {new_id} is not available")
            diff += new["price_cents"] - old[item_id]
        return diff

    def _settle(self, order: sqlite3.Row, amount: int) -> None:
        """Charge (amount > 0) or refund (amount < 0) the order's original payment method."""
        if amount == 0:
            return
        method = self.db.execute(
            "SELECT * FROM payment_methods WHERE payment_method_id = ?", (order["payment_method_id"],)
        ).fetchone()
        if method["kind"] == "gift_card":
            if amount > method["balance_cents"]:
                raise ToolError(
                    f"the gift card {method['payment_method_id']} has {money(method['balance_cents'])} left, "
                    f"not enough for the price difference of {money(amount)}"
                )
            self.db.execute(
                "UPDATE payment_methods SET balance_cents = balance_cents - ? WHERE payment_method_id = ?",
                (amount, method["payment_method_id"]),
            )
        kind = "payment" if amount > 0 else "refund"
        self.db.execute(
            "INSERT INTO payments (order_id, payment_method_id, kind, amount_cents) VALUES (?, ?, ?, ?)",
            (order["order_id"], method["payment_method_id"], kind, abs(amount)),
        )

    # ------------------------------------------------------------ identity

    @tool
    def find_user_id_by_email(self, email: str) -> str:
        """Find a customer's user id by their email address; verifies the customer's identity.

        Args:
            email: The customer's email address, e.g. "ava.smith12@example.com".
        """
        row = self.db.execute("SELECT user_id FROM users WHERE email = ?", (email.strip().lower(),)).fetchone()
        if row is None:
            raise ToolError(f"no customer with email {email!r}")
        self.user_id = row["user_id"]
        return row["user_id"]

    @tool
    def find_user_id_by_name_zip(self, first_name: str, last_name: str, zip: str) -> str:
        """Find a customer's user id by first name, last name and zip code; verifies the customer's identity.

        Args:
            first_name: The customer's first name, e.g. "Ava".
            last_name: The customer's last name, e.g. "Smith".
            zip: The zip code of the customer's address, e.g. "12345".
        """
        row = self.db.execute(
            "SELECT user_id FROM users WHERE lower(first_name) = ? AND lower(last_name) = ? AND zip = ?",
            (first_name.strip().lower(), last_name.strip().lower(), zip.strip()),
        ).fetchone()
        if row is None:
            raise ToolError(f"no customer named {first_name} {last_name} with zip code {zip}")
        self.user_id = row["user_id"]
        return row["user_id"]

    # ------------------------------------------------------------ reading

    @tool
    def get_user_details(self, user_id: str) -> dict[str, Any]:
        """The verified customer's name, email, address, payment methods and order ids.

        Args:
            user_id: The customer's user id.
        """
        if user_id != self._require_user():
            raise ToolError(f"user {user_id!r} is not the verified customer {self.user_id}")
        u = self.db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        methods = self.db.execute(
            "SELECT * FROM payment_methods WHERE user_id = ? ORDER BY payment_method_id", (user_id,)
        )
        orders = self.db.execute("SELECT order_id FROM orders WHERE user_id = ? ORDER BY order_id", (user_id,))
        return {
            "user_id": user_id,
            "name": f"{u['first_name']} {u['last_name']}",
            "email": u["email"],
            "address": {k: u[k] for k in ("address1", "city", "state", "zip")},
            "payment_methods": [
                {"payment_method_id": m["payment_method_id"], "kind": m["kind"], "label": m["label"]}
                | ({"balance": money(m["balance_cents"])} if m["kind"] == "gift_card" else {})
                for m in methods
            ],
            "orders": [o["order_id"] for o in orders],
        }

    @tool
    def get_order_details(self, order_id: str) -> dict[str, Any]:
        """Status, items, address, payment method and total of one of the verified customer's orders.

        Args:
            order_id: The order id, e.g. "#W1234567".
        """
        order = self._order(order_id)
        rows = self.db.execute(
            "SELECT oi.item_id, oi.price_cents, v.options, p.name, p.product_id FROM order_items oi "
            "JOIN variants v ON v.item_id = oi.item_id JOIN products p ON p.product_id = v.product_id "
            "WHERE oi.order_id = ? ORDER BY p.name",
            (order["order_id"],),
        ).fetchall()
        return {
            "order_id": order["order_id"],
            "status": order["status"],
            "items": [
                {
                    "item_id": r["item_id"],
                    "product": r["name"],
                    "product_id": r["product_id"],
                    "options": json.loads(r["options"]),
                    "price": money(r["price_cents"]),
                }
                for r in rows
            ],
            "total": money(sum(r["price_cents"] for r in rows)),
            "address": {k: order[k] for k in ("address1", "city", "state", "zip")},
            "payment_method_id": order["payment_method_id"],
        }

    @tool
    def list_product_types(self) -> dict[str, str]:
        """Every product the store sells, as {product name: product id}."""
        return {r["name"]: r["product_id"] for r in self.db.execute("SELECT * FROM products ORDER BY name")}

    @tool
    def get_product_details(self, product_id: str) -> dict[str, Any]:
        """A product's variants: item id, options, price and availability of each.

        Args:
            product_id: The product id (from list_product_types or get_order_details).
        """
        product = self.db.execute("SELECT * FROM products WHERE product_id = ?", (product_id.strip(),)).fetchone()
        if product is None:
            raise ToolError(f"no product {product_id!r}; list the product ids with list_product_types")
        rows = self.db.execute("SELECT * FROM variants WHERE product_id = ? ORDER BY item_id", (product_id.strip(),))
        variants = {
            r["item_id"]: {
                "options": json.loads(r["options"]),
                "price": money(r["price_cents"]),
                "available": bool(r["available"]),
            }
            for r in rows
        }
        return {"product_id": product["product_id"], "name": product["name"], "variants": variants}

    # ------------------------------------------------------------ writing

    @tool
    def cancel_pending_order(
        self, order_id: str, reason: Literal["no longer needed", "ordered by mistake"]
    ) -> dict[str, Any]:
        """Cancel a pending order; its total is refunded to the original payment method.

        Args:
            order_id: The order id, e.g. "#W1234567".
            reason: Why the customer cancels.
        """
        order = self._order(order_id)
        self._require_status(order, "pending", "be cancelled")
        total = sum(self._items(order["order_id"]).values())
        with self.db:
            self.db.execute(
                "UPDATE orders SET status = 'cancelled', cancel_reason = ? WHERE order_id = ?",
                (reason, order["order_id"]),
            )
            self._settle(order, -total)
        return {
            "order_id": order["order_id"],
            "status": "cancelled",
            "refund": money(total),
            "refunded_to": order["payment_method_id"],
        }

    @tool
    def modify_pending_order_address(
        self, order_id: str, address1: str, city: str, state: str, zip: str
    ) -> dict[str, Any]:
        """Change the shipping address of a pending order.

        Args:
            order_id: The order id, e.g. "#W1234567".
            address1: Street address, e.g. "12 Oak St".
            city: City.
            state: Two-letter state code, e.g. "TX".
            zip: Five-digit zip code.
        """
        order = self._order(order_id)
        self._require_status(order, "pending", "have their address changed")
        if not (zip.isdigit() and len(zip) == 5):
            raise ToolError(f"zip must be five digits, got {zip!r}")
        with self.db:
            self.db.execute(
                "UPDATE orders SET address1 = ?, city = ?, state = ?, zip = ? WHERE order_id = ?",
                (address1.strip(), city.strip(), state.strip().upper(), zip, order["order_id"]),
            )
        return self.get_order_details(order["order_id"])

    @tool
    def modify_pending_order_items(self, order_id: str, item_ids: list[str], new_item_ids: list[str]) -> dict[str, Any]:
        """Swap items of a pending order for other variants of the same products; the price
        difference is charged to or refunded to the order's payment method.

        Args:
            order_id: The order id, e.g. "#W1234567".
            item_ids: The item ids in the order to replace.
            new_item_ids: The new item ids, one per item in item_ids, in the same order.
        """
        order = self._order(order_id)
        self._require_status(order, "pending", "have their items modified")
        diff = self._swap(order["order_id"], item_ids, new_item_ids)
        with self.db:
            for item_id, new_id in zip(item_ids, new_item_ids, strict=True):
                price = self.db.execute("SELECT price_cents FROM variants WHERE item_id = ?", (new_id,)).fetchone()[0]
                self.db.execute(
                    "UPDATE order_items SET item_id = ?, price_cents = ? WHERE order_id = ? AND item_id = ?",
                    (new_id, price, order["order_id"], item_id),
                )
            self._settle(order, diff)
        details = self.get_order_details(order["order_id"])
        return details | {"price_difference": money(diff)}

    @tool
    def return_delivered_order_items(
        self, order_id: str, item_ids: list[str], payment_method_id: str
    ) -> dict[str, Any]:
        """Request the return of items of a delivered order; refunded to the original payment method.

        Args:
            order_id: The order id, e.g. "#W1234567".
            item_ids: The item ids to return.
            payment_method_id: Where the refund goes: must be the order's original payment method.
        """
        order = self._order(order_id)
        self._require_status(order, "delivered", "have items returned")
        items = self._check_items(order["order_id"], item_ids)
        if payment_method_id != order["payment_method_id"]:
            raise ToolError(
                f"refunds go to the original payment method of the order, {order['payment_method_id']}, not {payment_method_id!r}"
            )
        refund = sum(items.values())
        with self.db:
            self.db.execute("UPDATE orders SET status = 'return requested' WHERE order_id = ?", (order["order_id"],))
            self.db.execute(
                "INSERT INTO returns (order_id, kind, item_ids, new_item_ids, payment_method_id, amount_cents) "
                "VALUES (?, 'return', ?, NULL, ?, ?)",
                (order["order_id"], json.dumps(sorted(item_ids)), payment_method_id, refund),
            )
            self._settle(order, -refund)
        return {
            "order_id": order["order_id"],
            "status": "return requested",
            "refund": money(refund),
            "refunded_to": payment_method_id,
        }

    @tool
    def exchange_delivered_order_items(
        self, order_id: str, item_ids: list[str], new_item_ids: list[str]
    ) -> dict[str, Any]:
        """Request the exchange of items of a delivered order for other variants of the same
        products; the price difference is charged to or refunded to the original payment method.

        Args:
            order_id: The order id, e.g. "#W1234567".
            item_ids: The item ids to exchange.
            new_item_ids: The new item ids, one per item in item_ids, in the same order.
        """
        order = self._order(order_id)
        self._require_status(order, "delivered", "have items exchanged")
        diff = self._swap(order["order_id"], item_ids, new_item_ids)
        pairs = sorted(zip(item_ids, new_item_ids, strict=True))
        with self.db:
            self.db.execute("UPDATE orders SET status = 'exchange requested' WHERE order_id = ?", (order["order_id"],))
            self.db.execute(
                "INSERT INTO returns (order_id, kind, item_ids, new_item_ids, payment_method_id, amount_cents) "
                "VALUES (?, 'exchange', ?, ?, ?, ?)",
                (
                    order["order_id"],
                    json.dumps([a for a, _ in pairs]),
                    json.dumps([b for _, b in pairs]),
                    order["payment_method_id"],
                    diff,
                ),
            )
            self._settle(order, diff)
        return {"order_id": order["order_id"], "status": "exchange requested", "price_difference": money(diff)}


class Session(RetailTools):
    """The tools on a database outside an env: used to replay a task's gold actions."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.user_id = None

    def run(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call one tool by name; raises `ToolError` if a rule is broken."""
        return getattr(self, name)(**arguments)
