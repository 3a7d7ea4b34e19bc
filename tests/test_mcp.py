"""MCP envs: any MCP server's tools as an env (a small MCPServer written here), and
MCPGit-v0 on the published mcp-server-git, both through the official mcp SDK over stdio."""

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from agentgym.envs.mcp.env import MCPEnv, ServerFailed
from agentgym.envs.mcp.git import GitMCPEnv, GitOracle
from gymnasium.utils.env_checker import check_env

COUNTER = [sys.executable, str(Path(__file__).parent / "data" / "mcp_counter.py")]
TASKS = [
    {"id": "three", "instruction": "Increment the counter three times, then answer its value.", "answer": "3",
     "split": "test", "min_turns": 4},
    {"id": "zero", "instruction": "Answer the counter's value.", "answer": "0", "split": "test"},
]  # fmt: skip


def call(name, **arguments):
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


@pytest.fixture
def counter():
    env = MCPEnv(COUNTER, tasks=TASKS)
    yield env
    env.close()


def test_the_servers_tools_are_the_envs_and_a_server_per_episode_keeps_state_apart(counter):
    obs, info = counter.reset(options={"task_id": "three"})
    names = {t["function"]["name"] for t in info["tools"]}
    assert names == {"increment", "value", "divide", "wait", "crash"}
    assert "by" in json.dumps(info["tools"])  # the input schemas come from the server
    for expected in ("1", "2", "3"):
        obs, *_ = counter.step(call("increment"))
        assert f"\n{expected}\n" in obs
    _, reward, terminated, _, info = counter.step("<answer>3</answer>")
    assert terminated and reward == 1.0 and info["success"]
    counter.reset(options={"task_id": "zero"})  # a new server: the counter starts at 0 again
    _, reward, *_ = counter.step("<answer>0</answer>")
    assert reward == 1.0


def test_a_stateless_server_is_shared_by_the_episodes(tmp_path):
    env = MCPEnv(COUNTER, tasks=TASKS, stateless=True)
    try:
        env.reset(options={"task_id": "three"})
        env.step(call("increment", by=5))
        env.reset(options={"task_id": "zero"})
        obs, *_ = env.step(call("value"))
        assert "\n5\n" in obs  # declared stateless: one server, so its state carries over
    finally:
        env.close()


def test_tool_errors_are_the_agents_and_server_failures_abort_the_episode(counter):
    counter.reset(options={"task_id": "three"})
    obs, _, terminated, _, info = counter.step(call("divide", by=0))
    assert "Error: Error executing tool divide" in obs and not terminated and info["tool_errors"] == 1
    obs, *_ = counter.step(call("nope"))
    assert obs.startswith("Invalid action: unknown tool 'nope'")
    counter.step_timeout_s = 0.5
    with pytest.raises(ServerFailed, match=r"did not answer within 0\.5 s"):
        counter.step(call("wait", seconds=5))
    counter.step_timeout_s = 30
    counter.reset(options={"task_id": "three"})
    with pytest.raises(ServerFailed, match="the MCP server failed"):
        counter.step(call("crash"))
    counter.reset(options={"task_id": "zero"})  # the next episode starts a new server
    assert counter.step("<answer>0</answer>")[1] == 1.0


def test_a_server_that_dies_in_a_rollout_aborts_only_that_episode(smol_tokenizer):
    import agentgym
    from tests.test_rollout import run

    agentgym.register("TestCounterMCP-v0", "agentgym.envs.mcp.env:MCPEnv", command=COUNTER, tasks=TASKS)
    trajs, _ = run(smol_tokenizer, respond=lambda msgs: call("crash"), horizon=3, n=2,
                   env_id="agentgym/TestCounterMCP-v0", max_new_tokens=64)  # fmt: skip
    assert [t.end_reason for t in trajs] == ["aborted", "aborted"] and "the MCP server failed" in trajs[0].error


@pytest.fixture(scope="module")
def git_env():
    env = GitMCPEnv()
    yield env
    env.close()


def test_the_git_oracle_solves_a_task_of_every_template_in_its_min_turns(git_env):
    picked = {}
    for task in git_env.tasks("test"):
        picked.setdefault(task.metadata["template"], task)
    assert set(picked) == {"added_by", "count", "changed_in", "branch", "commit"}
    for task in picked.values():
        obs, _ = git_env.reset(options={"task_id": task.id})
        oracle, messages, done, turns = (
            GitOracle(task),
            [{"role": "system", "content": ""}, {"role": "user", "content": obs}],
            False,
            0,
        )
        while not done:
            action = oracle.respond(messages)
            obs, reward, terminated, truncated, info = git_env.step(action)
            messages += [{"role": "assistant", "content": action}, {"role": "user", "content": obs}]
            turns, done = turns + 1, terminated or truncated
        assert reward == 1.0 and turns == task.min_turns, (task.id, info.get("check"))


def test_git_state_tasks_are_checked_against_the_repository(git_env):
    task = next(t for t in git_env.tasks("test") if t.metadata["template"] == "commit")
    git_env.reset(options={"task_id": task.id})
    repo = str(git_env.repo)
    git_env.step(call("git_add", repo_path=repo, files=[task.metadata["file"], "scratch.txt"]))  # one file too many
    git_env.step(call("git_commit", repo_path=repo, message=task.metadata["message"]))
    _, reward, _, _, info = git_env.step("<answer>done</answer>")
    assert reward == 0.0 and "not only" in info["check"]
    task = next(t for t in git_env.tasks("test") if t.metadata["template"] == "branch")
    git_env.reset(options={"task_id": task.id})
    _, reward, _, _, info = git_env.step("<answer>done</answer>")
    assert reward == 0.0 and "no branch" in info["check"]


def test_check_env_passes(git_env):
    check_env(git_env, skip_render_check=True)


def test_without_the_mcp_sdk_the_error_names_the_extra_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mcp(name, *args, **kwargs):
        if name == "mcp" or name.startswith("mcp."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mcp)
    with pytest.raises(ImportError, match=r"pip install 'agentgym\[mcp\]'"):
        MCPEnv(COUNTER, tasks=TASKS)
