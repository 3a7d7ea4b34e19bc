"""WebDatasette: the site env on a real third-party app (Datasette, started by the env)."""

import agentgym.envs.web.datasette as datasette_module
import pytest
from agentgym.envs.web.datasette import WebDatasetteEnv
from agentgym.envs.web.oracle import WebOracle, tool_call
from gymnasium.utils.env_checker import check_env

pytest.importorskip("datasette")


@pytest.fixture(scope="module")
def env():
    e = WebDatasetteEnv()
    yield e
    e.close()


def play(env, task, actions=None):
    obs, info = env.reset(options={"task_id": task.id})
    oracle, done = WebOracle(task), False
    actions = list(actions) if actions is not None else None
    while not done:
        obs, reward, terminated, truncated, info = env.step(actions.pop(0) if actions else oracle.act(obs))
        done = terminated or truncated
    return obs, reward, info


def test_the_oracle_reading_the_outline_solves_every_template_in_its_min_turns(env):
    templates = {}
    for task in env.tasks("test"):
        templates.setdefault(task.metadata["template"], task)
    assert set(templates) == {"facet_count", "most_expensive", "cheapest_rating", "row_brand", "sql_average"}
    for task in templates.values():
        obs, reward, info = play(env, task)
        assert reward == 1.0, (task.id, info.get("check"), obs[-800:])
        assert info["turn"] == task.min_turns, task.id


def test_a_wrong_answer_fails_and_the_sql_editor_is_blocked_where_the_task_forbids_it(env):
    task = next(t for t in env.tasks("test") if t.metadata["template"] == "facet_count")
    _, reward, info = play(env, task, actions=["<answer>999</answer>"])
    assert reward == 0.0 and "not the expected one" in info["check"]
    env.reset(options={"task_id": task.id})
    obs, *_ = env.step(tool_call("goto", url="/store?sql=select+count(*)+from+products"))
    assert "ERR_BLOCKED_BY_CLIENT" in obs and "Run SQL" not in obs


def test_check_env_passes(env):
    check_env(env, skip_render_check=True)


def test_without_datasette_the_env_names_the_extra_to_install(monkeypatch):
    monkeypatch.setattr(datasette_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install 'agentgym\[datasette\]'"):
        WebDatasetteEnv()
