"""Retail: a tau-bench-style customer-service world on a real SQLite database.

The agent serves one customer request (the first observation) with the store's tools
(`store.py`), then replies to the customer with `<answer>...</answer>`, which ends the
episode. Reward 1.0 when both hold:

- the database's final state equals the expected state (the state after the task's gold
  actions on a fresh copy of the store; compared as a hash of every table's rows);
- the reply states every required fact (amounts as "123.45", an order's status, ...);
  case, "$" and thousands separators are ignored.

Every episode works on its own in-memory copy of the seed database.
"""

from __future__ import annotations

import re
from typing import Any

from agentgym.envs.tools.retail.store import RetailTools
from agentgym.envs.tools.retail.tasks import expected_hash, make_tasks
from agentgym.envs.tools.retail.world import build_seed, open_copy, state_hash

from agentgym.env import Outcome, Task
from agentgym.tool_env import ToolEnv

POLICY = (
    "You are a customer-service agent of an online store. Rules: verify the customer's identity "
    "(by email, or by name and zip code) before any account or order action; only pending orders "
    "can be cancelled or modified; only delivered orders can have items returned or exchanged; "
    "refunds go to the original payment method; items can only be swapped for another variant of "
    "the same product. Use the tools, then reply to the customer with <answer>YOUR REPLY</answer>, "
    "which ends the conversation; state any amount the customer asks for as 123.45."
)
_NOISE = re.compile(r"[$,]")


def _normalise(text: str) -> str:
    return " ".join(_NOISE.sub("", text.lower()).split())


class RetailEnv(RetailTools, ToolEnv):
    """Serve a store customer with typed tools on SQLite; scored on the final database state and the reply.

    Args:
        num_users: customers in the generated store (the world is seeded by `task_seed`).
        per_template: the most tasks made from each of the 8 task templates (both splits).
        test_fraction: share of the tasks in "test" (seeded), the rest in "train".
        **kwargs: `TextEnv` arguments (max_turns, split, task_seed, render_mode).

    Example:
        >>> env = gymnasium.make("agentgym/Retail-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs, r, term, trunc, info = env.step(
        ...     '<tool_call>{"name": "list_product_types", "arguments": {}}</tool_call>')
    """

    default_max_turns = 15

    def __init__(self, num_users: int = 80, per_template: int = 60, test_fraction: float = 0.25, **kwargs: Any):
        super().__init__(**kwargs)
        if not 10 <= num_users <= 320 or per_template < 1 or not 0.0 <= test_fraction <= 1.0:
            raise ValueError(
                f"need 10 <= num_users <= 320 (distinct names), per_template >= 1 and test_fraction in [0, 1]; "
                f"got num_users={num_users}, per_template={per_template}, test_fraction={test_fraction}"
            )
        self.num_users = num_users
        self.per_template = per_template
        self.test_fraction = test_fraction
        self.db = None
        self.user_id = None

    def make_tasks(self, split: str) -> list[Task]:
        return make_tasks(split, self.task_seed, self.num_users, self.per_template, self.test_fraction)

    def setup(self, task: Task) -> str:
        self.close()
        self.db = open_copy(build_seed(self.task_seed, self.num_users))
        self.user_id = None
        return f"{POLICY}\n\nCustomer: {task.instruction}"

    def on_answer(self, answer: str) -> Outcome:
        task = self.current_task
        state_ok = state_hash(self.db) == expected_hash(task)
        reply = _normalise(answer)
        missing = [f for f in task.metadata["facts"] if _normalise(f) not in reply]
        success = state_ok and not missing
        notes = []
        if not state_ok:
            notes.append("the store's final state is not the expected one")
        if missing:
            notes.append(f"the reply does not state {missing}")
        text = "The customer has your reply; the conversation is over." + (f" ({'; '.join(notes)})" if notes else "")
        info = {"state_match": state_ok, "missing_facts": missing, "template": task.metadata["template"]}
        return Outcome(text, float(success), True, success, info=info)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        super().close()
