"""SearchEnv on the generated world: the gym contract, the oracle, tool errors, determinism."""

from __future__ import annotations

import json
import re

import gymnasium
import pytest
from agentgym.envs.search.tasks import oracle_actions
from gymnasium.utils.env_checker import check_env

import agentgym  # noqa: F401  (registers the envs)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("search-index")


@pytest.fixture(scope="module")
def env(cache_dir):
    env = gymnasium.make("agentgym/Search-v0", cache_dir=str(cache_dir)).unwrapped
    yield env
    env.close()


def call(name: str, **arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def result_block(observation: str, doc_id: str) -> str | None:
    """The search result of `doc_id` in a search observation, bold markers removed."""
    for block in re.split(r"\n(?=\d+\. \[)", observation):
        if f"[{doc_id}]" in block:
            return block.replace("**", "")
    return None


def sampled_tasks(env, per_hop: int):
    """`per_hop` tasks of each hop count from each split, spread over the split."""
    tasks = []
    for split in ("test", "train"):
        by_hop: dict[int, list] = {}
        for t in env.tasks(split):
            by_hop.setdefault(t.metadata["hops"], []).append(t)
        for hop_tasks in by_hop.values():
            tasks.extend(hop_tasks[:: max(1, len(hop_tasks) // per_hop)][:per_hop])
    return tasks


def test_passes_gymnasium_check_env(env):
    check_env(env)


@pytest.mark.parametrize("hops", [1, 2, 3, 4, 5])
def test_hop_variants_are_registered_with_their_hop_count(hops):
    env = gymnasium.make(f"agentgym/Search-{hops}hop-v0").unwrapped
    tasks = env.tasks("test")
    assert len(tasks) == 200
    assert {t.metadata["hops"] for t in tasks} == {hops}
    assert {t.min_turns for t in tasks} == {hops + 1}
    assert {t.difficulty for t in tasks} == {float(hops)}


def test_mixed_env_spreads_tasks_evenly_over_hops(env):
    counts: dict[int, int] = {}
    for t in env.tasks("train"):
        counts[t.metadata["hops"]] = counts.get(t.metadata["hops"], 0) + 1
    assert counts == {1: 200, 2: 200, 3: 200, 4: 200, 5: 200}


def test_oracle_wins_every_sampled_task_in_exactly_min_turns(env):
    for task in sampled_tasks(env, per_hop=40):
        env.reset(options={"task_id": task.id})
        actions = oracle_actions(task)
        assert len(actions) == task.min_turns == task.metadata["hops"] + 1
        for step, action in zip(task.metadata["steps"], actions, strict=False):
            observation, reward, terminated, truncated, _ = env.step(action)
            block = result_block(observation, step["doc_id"])
            assert block is not None, f"{task.id}: {step['query']!r} does not retrieve {step['doc_id']}"
            assert step["reveals"] in block, f"{task.id}: the snippet of {step['doc_id']} lacks {step['reveals']!r}"
            assert (reward, terminated, truncated) == (0.0, False, False)
        observation, reward, terminated, truncated, info = env.step(actions[-1])
        assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True), task.id
        assert env.turn == task.min_turns
        assert info["supporting_recall"] == 1.0
        assert info["f1"] == 1.0


def test_oracle_fails_when_the_turn_budget_is_below_min_turns(env):
    for task in sampled_tasks(env, per_hop=2):
        env.reset(options={"task_id": task.id, "max_turns": task.min_turns - 1})
        for action in oracle_actions(task)[:-1]:
            observation, reward, terminated, truncated, info = env.step(action)
        assert truncated and not terminated
        assert reward == 0.0 and not info["success"]
        assert "turn budget" in observation


def test_answer_is_matched_after_normalisation(env):
    task = next(t for t in env.tasks("test") if t.metadata["hops"] == 1)
    env.reset(options={"task_id": task.id})
    gold = task.metadata["answers"][0]
    _, reward, terminated, _, info = env.step(f"<answer>  the {gold.upper()}. </answer>")
    assert (reward, terminated, info["exact_match"]) == (1.0, True, True)


def test_wrong_answer_ends_with_zero_reward_and_reports_f1_and_gold(env):
    task = next(t for t in env.tasks("test") if t.metadata["hops"] == 2)
    env.reset(options={"task_id": task.id})
    _, reward, terminated, _, info = env.step("<answer>Nobody Atall</answer>")
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    assert info["f1"] == 0.0 and info["gold_answers"] == task.metadata["answers"]
    assert info["supporting_docs"] == sorted(task.metadata["supporting_doc_ids"])
    assert info["supporting_retrieved"] == [] and info["supporting_recall"] == 0.0


def test_info_tracks_retrieved_and_opened_supporting_documents(env):
    task = next(t for t in env.tasks("test") if t.metadata["hops"] == 3)
    env.reset(options={"task_id": task.id})
    first = task.metadata["steps"][0]
    _, _, _, _, info = env.step(call("search", query=first["query"]))
    assert info["supporting_retrieved"] == [first["doc_id"]]
    assert info["supporting_recall"] == pytest.approx(1 / 3)
    second = task.metadata["steps"][1]["doc_id"]
    _, _, _, _, info = env.step(call("open", doc_id=second))
    assert info["supporting_opened"] == [second]
    assert info["supporting_recall"] == pytest.approx(2 / 3)


def test_search_results_are_ranked_with_ids_titles_and_highlighted_snippets(env):
    task = next(t for t in env.tasks("test") if t.metadata["hops"] == 1)
    env.reset(options={"task_id": task.id})
    step = task.metadata["steps"][0]
    observation, *_ = env.step(call("search", query=step["query"], k=3))
    assert re.search(r"\(3 of \d+ matching documents\)", observation)
    assert [int(n) for n in re.findall(r"^(\d+)\. \[", observation, re.MULTILINE)] == [1, 2, 3]
    assert f"[{step['doc_id']}] {step['title']}" in observation
    keyword = step["query"].split()[-1]
    assert f"**{keyword}**" in observation


def test_open_pages_through_a_long_document(env):
    corpus = env.corpus
    doc = next(d for d in corpus.docs if len(corpus.pages(d.id, env.page_chars)) >= 2)
    env.reset(seed=0)
    pages = []
    for page in (1, 2):
        observation, _, _, _, info = env.step(call("open", doc_id=doc.id, page=page))
        assert not info["invalid_action"] and "tool_errors" not in info
        assert f"[{doc.id}] {doc.title} (page {page} of" in observation
        pages.append(corpus.pages(doc.id, env.page_chars)[page - 1])
        assert pages[-1] in observation
    assert "open page 2 to read on" in env.step(call("open", doc_id=doc.id))[0]
    assert " ".join(" ".join(pages).split()) in " ".join(doc.text.split())


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (call("search", query=""), "Error: the query is empty"),
        (call("search", query="   "), "Error: the query is empty"),
        (call("search", query="x" * 100_000), "the query is 100000 characters long"),
        (call("search", query="the of and was?!"), "no searchable words"),
        (call("search", query="Vorel", k=0), "k must be between 1 and 10"),
        (call("search", query="Vorel", k=50), "k must be between 1 and 10"),
        (call("open", doc_id="no-such-doc"), "no document has the id 'no-such-doc'"),
        (call("open", doc_id=""), "no document has the id ''"),
    ],
)
def test_bad_tool_arguments_are_reported_as_tool_errors(env, action, expected):
    env.reset(seed=0)
    observation, reward, terminated, _, info = env.step(action)
    assert "Error: " in observation and expected in observation
    assert info["tool_errors"] == 1 and not terminated and reward == 0.0


@pytest.mark.parametrize("page", [0, -1, 3, 99])
def test_out_of_range_pages_are_reported_as_tool_errors(env, page):
    doc = next(d for d in env.corpus.docs if len(env.corpus.pages(d.id, env.page_chars)) == 2)
    env.reset(seed=0)
    observation, _, terminated, _, info = env.step(call("open", doc_id=doc.id, page=page))
    assert f"Error: page {page} is out of range: document {doc.id} has 2 page(s)" in observation
    assert info["tool_errors"] == 1 and not terminated


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ('<tool_call>{"name": "search", "arguments": {"query": }</tool_call>', "invalid"),
        (call("search", query=42), "argument 'query' must be a string"),
        (call("search"), "query"),
        (call("open", doc_id="d00001", page="two"), "argument 'page' must be an integer"),
        (call("open", doc_id=["d00001"]), "argument 'doc_id' must be a string"),
        (call("browse", url="x"), "unknown tool 'browse'"),
        ("<answer></answer>", "the answer is empty"),
        ("I would search now", "no action found"),
    ],
)
def test_malformed_actions_are_invalid_observations(env, action, expected):
    env.reset(seed=0)
    observation, reward, terminated, _, info = env.step(action)
    assert info["invalid_action"] and not terminated and reward == 0.0
    assert expected in observation


def test_a_query_matching_nothing_says_so(env):
    env.reset(seed=0)
    observation, _, _, _, info = env.step(call("search", query="qqxqqz"))
    assert 'No document matches "qqxqqz"' in observation
    assert not info["invalid_action"] and "tool_errors" not in info


def test_tasks_are_deterministic_across_instances(env):
    other = gymnasium.make("agentgym/Search-v0").unwrapped
    for split in ("train", "test"):
        mine, theirs = env.tasks(split), other.tasks(split)
        assert [(t.id, t.instruction, t.metadata) for t in mine] == [(t.id, t.instruction, t.metadata) for t in theirs]
    reseeded = gymnasium.make("agentgym/Search-v0", task_seed=1).unwrapped
    assert [t.instruction for t in reseeded.tasks("test")] != [t.instruction for t in env.tasks("test")]


def test_train_and_test_questions_do_not_overlap(env):
    train = {t.metadata["question"] for t in env.tasks("train")}
    test = {t.metadata["question"] for t in env.tasks("test")}
    assert len(test) == 200 and len(train) == 1000
    assert not train & test


def test_test_split_does_not_depend_on_the_number_of_train_tasks(env):
    smaller = gymnasium.make("agentgym/Search-v0", num_train=10).unwrapped
    assert [t.instruction for t in smaller.tasks("test")] == [t.instruction for t in env.tasks("test")]


def test_questions_never_contain_their_answer(env):
    for task in env.tasks("train") + env.tasks("test"):
        assert task.metadata["answers"][0].lower() not in task.metadata["question"].lower(), task.id


def test_envs_in_one_process_share_one_index(env, cache_dir):
    other = gymnasium.make("agentgym/Search-2hop-v0", cache_dir=str(cache_dir)).unwrapped
    other.reset(seed=0)
    assert other.index is env.index


def test_reset_with_the_same_seed_picks_the_same_task(env):
    first, _ = env.reset(seed=123)
    second, _ = env.reset(seed=123)
    assert first == second
