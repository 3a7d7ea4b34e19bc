"""Retail: gold replays win, the store's rules hold, and every episode has its own database."""

import hashlib
import json
import threading

import gymnasium
import pytest
from agentgym.envs.tools.retail.env import RetailEnv
from agentgym.envs.tools.retail.tasks import TEMPLATES, gold_actions
from agentgym.envs.tools.retail.world import build_seed, open_copy, state_hash
from gymnasium.utils.env_checker import check_env


def call(name, **arguments):
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


@pytest.fixture(scope="module")
def env():
    env = RetailEnv()
    yield env
    env.close()


def first(env, template, split="test"):
    return next(t for t in env.tasks(split) if t.metadata["template"] == template)


def play(env, task, actions):
    env.reset(options={"task_id": task.id})
    total, info = 0.0, {}
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            break
    return total, info


def test_check_env_passes():
    check_env(gymnasium.make("agentgym/Retail-v0").unwrapped, skip_render_check=True)


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_gold_replay_wins_every_task_of_the_template_in_min_turns(env, template):
    tasks = [t for s in ("train", "test") for t in env.tasks(s) if t.metadata["template"] == template]
    assert len(tasks) == 60
    for task in tasks:
        total, info = play(env, task, gold_actions(task))
        assert total == 1.0 and info["success"] and info["turn"] == task.min_turns, (task.id, info)


def test_splits_are_deterministic_disjoint_and_seeded():
    a, b, c = RetailEnv(), RetailEnv(), RetailEnv(task_seed=1)
    ids = {s: [t.id for t in a.tasks(s)] for s in ("train", "test")}
    assert ids == {s: [t.id for t in b.tasks(s)] for s in ("train", "test")}
    assert not set(ids["train"]) & set(ids["test"]) and len(ids["train"]) > len(ids["test"]) > 0
    assert [t.id for t in c.tasks("test")] != ids["test"]


def test_answering_without_acting_fails_a_write_task(env):
    task = first(env, "cancel")
    total, info = play(env, task, [f"<answer>{task.metadata['facts'][0]}</answer>"])
    assert total == 0.0 and not info["state_match"]


def test_the_right_state_without_the_required_facts_fails(env):
    task = first(env, "cancel")
    total, info = play(env, task, [*gold_actions(task)[:-1], "<answer>Your order is cancelled.</answer>"])
    assert total == 0.0 and info["state_match"] and info["missing_facts"] == task.metadata["facts"]


def test_refusing_a_forbidden_request_wins_and_doing_it_is_impossible(env):
    task = first(env, "refuse_cancel")
    env.reset(options={"task_id": task.id})
    ident = task.metadata["gold"][0]
    env.step(call(ident[0], **ident[1]))
    order_id = task.metadata["gold"][1][1]["order_id"]
    obs, *_, info = env.step(call("cancel_pending_order", order_id=order_id, reason="no longer needed"))
    assert "only pending orders can be cancelled" in obs and not info["invalid_action"]
    obs, reward, terminated, _, info = env.step("<answer>Sorry, the order was already delivered.</answer>")
    assert terminated and reward == 1.0


def test_identity_must_be_verified_before_account_actions(env):
    task = first(env, "order_status")
    env.reset(options={"task_id": task.id})
    order_id = task.metadata["gold"][1][1]["order_id"]
    obs, *_ = env.step(call("get_order_details", order_id=order_id))
    assert "identity is not verified" in obs and "find_user_id_by_email" in obs


def test_an_unknown_customer_is_not_verified(env):
    env.reset(options={"task_id": first(env, "order_status").id})
    obs, *_ = env.step(call("find_user_id_by_email", email="nobody@example.com"))
    assert "no customer with email" in obs and env.user_id is None


def test_another_customers_order_is_refused(env):
    a, b = first(env, "order_status"), env.tasks("test")[-1]
    env.reset(options={"task_id": a.id})
    ident = a.metadata["gold"][0]
    env.step(call(ident[0], **ident[1]))
    other = next(g for g in b.metadata["gold"] if "order_id" in g[1])[1]["order_id"]
    db = env.db
    owner = db.execute("SELECT user_id FROM orders WHERE order_id = ?", (other,)).fetchone()[0]
    assert owner != env.user_id
    obs, *_ = env.step(call("get_order_details", order_id=other))
    assert "does not belong to the verified customer" in obs


def test_refunds_must_go_to_the_original_payment_method(env):
    task = first(env, "return")
    env.reset(options={"task_id": task.id})
    before = state_hash(env.db)
    for name, args in task.metadata["gold"][:-1]:
        env.step(call(name, **args))
    args = dict(task.metadata["gold"][-1][1], payment_method_id="gift_card_0000000")
    obs, *_ = env.step(call("return_delivered_order_items", **args))
    assert "refunds go to the original payment method" in obs
    assert state_hash(env.db) == before


def test_exchanges_stay_within_the_same_product(env):
    task = first(env, "exchange")
    env.reset(options={"task_id": task.id})
    for name, args in task.metadata["gold"][:-1]:
        env.step(call(name, **args))
    args = task.metadata["gold"][-1][1]
    product = env.db.execute("SELECT product_id FROM variants WHERE item_id = ?", (args["item_ids"][0],)).fetchone()[0]
    foreign = env.db.execute("SELECT item_id FROM variants WHERE product_id != ? LIMIT 1", (product,)).fetchone()[0]
    obs, *_ = env.step(
        call(
            "exchange_delivered_order_items",
            order_id=args["order_id"],
            item_ids=args["item_ids"],
            new_item_ids=[foreign],
        )
    )
    assert "items can only be swapped within the same product" in obs


def test_only_pending_orders_can_be_modified(env):
    task = first(env, "exchange")  # a delivered order
    env.reset(options={"task_id": task.id})
    for name, args in task.metadata["gold"][:-1]:
        env.step(call(name, **args))
    args = task.metadata["gold"][-1][1]
    obs, *_ = env.step(call("modify_pending_order_items", **args))
    assert "only pending orders can have their items modified" in obs


def test_an_argument_outside_its_enum_is_an_invalid_action(env):
    env.reset(options={"task_id": first(env, "cancel").id})
    obs, *_, info = env.step(call("cancel_pending_order", order_id="#W1", reason="because"))
    assert info["invalid_action"] and "must be one of ['no longer needed', 'ordered by mistake']" in obs


def test_several_calls_in_one_message_run_in_order(env):
    task = first(env, "order_status")
    env.reset(options={"task_id": task.id})
    obs, *_, info = env.step("".join(call(n, **a) for n, a in task.metadata["gold"]))
    assert obs.count("<tool_response") == 2 and '"status"' in obs and info["tool_calls"] == 2


def test_concurrent_episodes_see_only_their_own_writes_and_leave_the_seed_unchanged():
    seed = build_seed(0, 80)
    digest = hashlib.sha256(seed).hexdigest()
    pristine = open_copy(seed)
    initial = state_hash(pristine)
    pristine.close()
    envs = [RetailEnv() for _ in range(16)]
    writes = [t for t in envs[0].tasks("train") if t.metadata["template"] in ("cancel", "change_address", "return")][
        :16
    ]
    results = [None] * 16
    barrier = threading.Barrier(16)

    def worker(i):
        env, task = envs[i], writes[i]
        env.reset(options={"task_id": task.id})
        barrier.wait()  # all episodes are open at once before anyone writes
        actions = gold_actions(task)
        for action in actions[:-1]:
            env.step(action)
        barrier.wait()  # all writes done before anyone is scored
        _, reward, *_ = env.step(actions[-1])
        results[i] = reward

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1.0] * 16  # each final state equals its own task's expected state: no foreign writes
    assert hashlib.sha256(build_seed(0, 80)).hexdigest() == digest
    fresh = open_copy(build_seed(0, 80))
    assert state_hash(fresh) == initial
    fresh.close()
