"""OpenEnv: agentgym envs served with OpenEnv's own server and driven by its own client;
OpenEnv servers used as agentgym envs by `agentgym eval`."""

import re
import socket
import subprocess
import sys
import threading
import time

import gymnasium
import pytest

pytest.importorskip("openenv.core")

from agentgym.envs.guess_number.oracle import BisectionOracle
from openenv.core.generic_client import GenericEnvClient

from agentgym.config import EvalConfig, load_config
from agentgym.eval import evaluate
from agentgym.policy import ScriptedPolicy

ENV = "agentgym/GuessNumber-16-v0"


@pytest.fixture(scope="module")
def served():
    """`agentgym serve` in a process of its own, as a user runs it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "serve", ENV, "--max-sessions", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line + proc.stderr.read()
    url = match.group(0)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield url, proc
    proc.terminate()
    proc.wait(10)


def bisect_actions(env, task_id):
    """The bisection replies for a task, played in process: (actions, observations, reward)."""
    oracle = BisectionOracle(16)
    obs, _ = env.reset(options={"task_id": task_id})
    messages = [{"role": "system", "content": ""}, {"role": "user", "content": obs}]
    actions, observations, total, done = [], [], 0.0, False
    while not done:
        action = oracle.respond(messages)
        obs, reward, terminated, truncated, _ = env.step(action)
        messages += [{"role": "assistant", "content": action}, {"role": "user", "content": obs}]
        actions.append(action)
        observations.append(obs)
        total += reward
        done = terminated or truncated
    return actions, observations, total


def test_openenvs_own_client_plays_a_full_episode_with_the_in_process_reward(served):
    url, _ = served
    env = gymnasium.make(ENV)
    task = env.unwrapped.tasks("test")[5]
    actions, observations, reward = bisect_actions(env, task.id)
    with GenericEnvClient(base_url=url).sync() as client:
        result = client.reset(task_id=task.id)
        assert result.observation["task_id"] == task.id and task.instruction in result.observation["text"]
        total = 0.0
        for action, expected in zip(actions, observations, strict=True):
            result = client.step({"text": action})
            assert result.observation["text"] == expected
            total += result.reward
        assert result.done and result.observation["success"] and total == reward == 1.0


def test_sessions_are_isolated(served):
    url, _ = served
    env = gymnasium.make(ENV)
    a_task, b_task = env.unwrapped.tasks("test")[1], env.unwrapped.tasks("test")[2]
    a_actions, a_obs, _ = bisect_actions(env, a_task.id)
    b_actions, b_obs, _ = bisect_actions(env, b_task.id)
    with GenericEnvClient(base_url=url).sync() as a, GenericEnvClient(base_url=url).sync() as b:
        a.reset(task_id=a_task.id)
        b.reset(task_id=b_task.id)
        for i in range(max(len(a_actions), len(b_actions))):  # interleaved steps, one env each
            if i < len(a_actions):
                assert a.step({"text": a_actions[i]}).observation["text"] == a_obs[i]
            if i < len(b_actions):
                assert b.step({"text": b_actions[i]}).observation["text"] == b_obs[i]


def test_an_openenv_server_is_an_env_that_eval_runs_on(served, tmp_path, smol_tokenizer):
    url, _ = served
    inproc = gymnasium.make(ENV).unwrapped.tasks("test")[:6]
    tasks = [{"id": t.id, "reset": {"task_id": t.id}, "split": "test"} for t in inproc]
    cfg = load_config(
        None,
        EvalConfig,
        [f"output_dir={tmp_path}", "env.id=agentgym/OpenEnv-v0", "horizons=[1,2,3,4,8]", "progress=false",
         "samples_per_task=1", "rollout.max_concurrent=4"],  # at most the server's --max-sessions
    )  # fmt: skip
    cfg.env.kwargs = {"url": url, "tasks": tasks}
    oracle = BisectionOracle(16)
    result = evaluate(cfg, ScriptedPolicy(smol_tokenizer, lambda msgs: f"My guess: {oracle.respond(msgs)}"))
    assert result.summary["aborted"] == 0
    for h in (1, 2, 3, 4, 8):  # the same curve as the env in process
        assert result.success_at(h) == pytest.approx(sum(t.min_turns <= h for t in inproc) / 6), h


def test_more_episodes_than_the_server_has_sessions_abort_and_a_dead_server_aborts_its_episode(tmp_path):
    from agentgym.integrations.openenv import OpenEnvEnv

    proc = subprocess.Popen([sys.executable, "-m", "agentgym.cli", "serve", ENV, "--max-sessions", "1"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline()).group(0)
    time.sleep(0.5)
    first, second = OpenEnvEnv(url, tasks=4), OpenEnvEnv(url, tasks=4)
    try:
        first.reset(options={"task_id": "seed-0"})
        with pytest.raises(RuntimeError, match=r"OpenEnv server .*: reset failed"):
            second.reset(options={"task_id": "seed-1"})  # the one session is taken
        proc.terminate()
        proc.wait(10)
        with pytest.raises(RuntimeError, match=r"OpenEnv server .*: step failed"):
            first.step("<answer>8</answer>")
    finally:
        first.close()
        second.close()
        if proc.poll() is None:
            proc.kill()


def test_a_typed_openenv_environment_gets_json_actions_and_shows_its_fields(tmp_path):
    """An OpenEnv env of the usual kind (typed fields, no text field), served by OpenEnv's
    own create_app in this process."""
    import uvicorn
    from openenv.core.env_server.http_server import create_fastapi_app
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, Observation, State

    from agentgym.integrations.openenv import OpenEnvEnv

    class MoveAction(Action):
        dx: int
        dy: int

    class PositionObservation(Observation):
        x: int = 0
        y: int = 0

    class GridEnvironment(Environment):
        """Reach (2, 1) from (0, 0)."""

        SUPPORTS_CONCURRENT_SESSIONS = True

        def reset(self, seed=None, episode_id=None, **kwargs):
            self.pos = [0, 0]
            return PositionObservation(x=0, y=0)

        def step(self, action, timeout_s=None, **kwargs):
            self.pos = [self.pos[0] + action.dx, self.pos[1] + action.dy]
            done = self.pos == [2, 1]
            return PositionObservation(x=self.pos[0], y=self.pos[1], done=done, reward=1.0 if done else 0.0)

        @property
        def state(self):
            return State()

    app = create_fastapi_app(GridEnvironment, MoveAction, PositionObservation, max_concurrent_envs=2)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    while not server.started:
        time.sleep(0.05)
    env = OpenEnvEnv(url, tasks=3)
    try:
        obs, _ = env.reset(options={"task_id": "seed-0"})
        assert '"x": 0' in obs and '"y": 0' in obs
        obs, reward, *_ = env.step("go right")
        assert obs.startswith("Invalid action: reply with a JSON object") and reward == 0.0
        obs, reward, terminated, *_ = env.step('{"dx": 2, "dy": 0}')
        assert '"x": 2' in obs and not terminated
        obs, reward, terminated, _, info = env.step('{"dx": 0, "dy": 1}')
        assert terminated and reward == 1.0 and info["success"]
    finally:
        env.close()
        server.should_exit = True
        thread.join(10)


def test_without_openenv_the_error_names_the_extra_to_install(monkeypatch):
    import builtins

    from agentgym.errors import UserError
    from agentgym.integrations import openenv as module

    real = builtins.__import__

    def no_openenv(name, *args, **kwargs):
        if name.startswith("openenv"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openenv)
    with pytest.raises(UserError, match=r"pip install 'agentgym\[openenv\]'"):
        module.make_app(ENV)
