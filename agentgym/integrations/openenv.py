"""agentgym envs over OpenEnv, and OpenEnv envs in agentgym, with the OpenEnv package itself
(`openenv-core`, whose `openenv` module TRL's OpenEnv integration imports).

Serving (`agentgym serve ENV_ID`): any registered env behind OpenEnv's own server
(`openenv.core.env_server.http_server.create_app`: reset/step/state over HTTP and a
WebSocket session per client, one env instance per session), with a text action and a
text observation:

    TextAction:       {"text": "<answer>8</answer>"}                     the agent's reply
    TextObservation:  {"text": ..., "task_id": ..., "turn": ..., "success": ..., "truncated": ...,
                       "info": {...}, "done": ..., "reward": ...}
    reset kwargs:     seed, episode_id, and agentgym's task_id and split

Using (`agentgym/OpenEnv-v0` with env.kwargs {url: ...}): an OpenEnv server as an agentgym
env. OpenEnv envs have typed actions and observations and no task lists, so:

- action: an action with one text field (found in the server's /schema) gets the reply as
  that field; any other action is the reply parsed as a JSON object of its fields (a reply
  that is not one is an invalid action, which the agent is told about);
- observation: its `text` field when it has one (agentgym's servers do), else its fields
  other than done/reward/metadata as JSON;
- tasks: `tasks: N` gives seeds 0..N-1 (`seed-K`, reset with that seed), or `tasks:` a
  list of {id, reset: {kwargs}, split?, instruction?} (e.g. {"id": "t1", "reset":
  {"task_id": "..."}, "split": "test"}); without splits the last `test_fraction` are test;
- success: the observation's `success` when it has one, else a positive reward at the end;
- a server that fails or drops the session ends the episode aborted (an env failure).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import gymnasium

from agentgym.env import Outcome, Task, TextEnv
from agentgym.errors import UserError
from agentgym.trajectory import json_safe

__all__ = ["OpenEnvEnv", "make_app", "serve"]


def _require() -> None:
    try:
        import openenv.core  # noqa: F401
    except ImportError:
        raise UserError(
            "agentgym's OpenEnv integration needs the OpenEnv package: pip install 'agentgym[openenv]'"
        ) from None


def _models():
    """TextAction and TextObservation (built on first use: openenv is an optional extra)."""
    global _MODELS
    if _MODELS is None:
        from openenv.core.env_server.types import Action, Observation
        from pydantic import Field

        class TextAction(Action):
            """The agent's reply, as text."""

            text: str = Field(..., description="the agent's reply: a tool call, an answer, or a move")

        class TextObservation(Observation):
            """What the env answered, as text, with agentgym's episode facts."""

            text: str = Field(default="", description="the observation the agent reads")
            task_id: str | None = Field(default=None, description="the episode's task")
            turn: int = Field(default=0, description="turns taken")
            success: bool = Field(default=False, description="the task is solved")
            truncated: bool = Field(default=False, description="the turn budget is spent")
            info: dict[str, Any] = Field(default_factory=dict, description="the env's info (JSON-safe entries)")

        _MODELS = (TextAction, TextObservation)
    return _MODELS


_MODELS = None


def _environment_class():
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import State

    _, TextObservation = _models()

    class AgentgymEnvironment(Environment):
        """One agentgym env behind OpenEnv's server (a new instance per session)."""

        SUPPORTS_CONCURRENT_SESSIONS = True  # each session gets its own instance from the factory

        def __init__(self, env_id: str, env_kwargs: dict[str, Any]):
            super().__init__()
            self.env = gymnasium.make(env_id, **env_kwargs)
            self._state = State(episode_id=None, step_count=0)

        def _observation(self, text, reward, terminated, truncated, info) -> Any:
            return TextObservation(
                text=text,
                task_id=info.get("task_id"),
                turn=int(info.get("turn", 0)),
                success=bool(info.get("success", False)),
                truncated=bool(truncated),
                info=json_safe(info),
                done=bool(terminated or truncated),
                reward=float(reward),
            )

        def reset(self, seed=None, episode_id=None, task_id=None, split=None, **kwargs):
            options = {k: v for k, v in (("task_id", task_id), ("split", split)) if v is not None}
            text, info = self.env.reset(seed=seed, options=options or None)
            self._state = State(episode_id=episode_id or info.get("task_id"), step_count=0, task_id=info.get("task_id"))
            return self._observation(text, 0.0, False, False, info)

        def step(self, action, timeout_s=None, **kwargs):
            text, reward, terminated, truncated, info = self.env.step(action.text)
            self._state.step_count += 1
            return self._observation(text, reward, terminated, truncated, info)

        @property
        def state(self):
            return self._state

        def close(self) -> None:
            self.env.close()

    return AgentgymEnvironment


def make_app(env_id: str, max_sessions: int = 8, env_kwargs: dict[str, Any] | None = None):
    """OpenEnv's FastAPI app serving `env_id` (a session per WebSocket client, at most
    `max_sessions` at once)."""
    _require()
    from openenv.core.env_server.http_server import create_fastapi_app

    from agentgym.checks import check_env_id

    full = check_env_id(env_id)
    cls = _environment_class()
    TextAction, TextObservation = _models()
    return create_fastapi_app(
        lambda: cls(full, dict(env_kwargs or {})), TextAction, TextObservation, max_concurrent_envs=max_sessions
    )


def serve(env_id: str, host: str = "127.0.0.1", port: int = 0, max_sessions: int = 8, env_kwargs=None) -> None:
    """Serve `env_id` over OpenEnv until interrupted; prints the URL once it listens."""
    import socket

    import uvicorn

    app = make_app(env_id, max_sessions, env_kwargs)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning")
    server = uvicorn.Server(config)
    print(f"serving {env_id} over OpenEnv on http://{host}:{bound}  (Ctrl-C to stop)", flush=True)
    server.run(sockets=[sock])


# ---------------------------------------------------------------------- OpenEnv envs in agentgym


class OpenEnvEnv(TextEnv):
    """An OpenEnv server as an agentgym env (see the module docstring).

    Args:
        url: the server, e.g. "http://127.0.0.1:8000".
        tasks: the number of seeded tasks (ids seed-0 ...), or a list of {"id", "reset"}.
        test_fraction: the share of the tasks in the test split (the last ones).
        timeout_s: how long one reset or step may take.
        **kwargs: `TextEnv` arguments (max_turns, split, ...).
    """

    default_max_turns = 20

    def __init__(self, url: str, tasks: int | list[dict[str, Any]] = 100, test_fraction: float = 0.2,
                 timeout_s: float = 60.0, **kwargs: Any):  # fmt: skip
        _require()
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        specs = self._specs(tasks)
        if any("split" in s for s in specs):
            self._splits = {name: [s for s in specs if s.get("split", "train") == name] for name in ("train", "test")}
        else:
            cut = len(specs) - max(1, round(len(specs) * test_fraction))
            self._splits = {"train": specs[:cut], "test": specs[cut:]}
        super().__init__(**kwargs)
        self._client = None
        self._field: str | None = None
        self._schema_read = False
        self._last_success = False

    @staticmethod
    def _specs(tasks: int | list[dict[str, Any]]) -> list[dict[str, Any]]:
        if isinstance(tasks, int):
            if tasks < 1:
                raise ValueError(f"tasks must be >= 1, got {tasks}")
            return [{"id": f"seed-{k}", "reset": {"seed": k}} for k in range(tasks)]
        specs = []
        for i, t in enumerate(tasks):
            if not isinstance(t, dict) or not isinstance(t.get("id"), str):
                raise ValueError(f"tasks[{i}] must be {{'id': ..., 'reset': {{...}}}}, got {t!r}")
            spec = {"id": t["id"], "reset": dict(t.get("reset") or {}), "instruction": t.get("instruction", "")}
            if "split" in t:
                if t["split"] not in ("train", "test"):
                    raise ValueError(f"tasks[{i}].split must be 'train' or 'test', got {t['split']!r}")
                spec["split"] = t["split"]
            specs.append(spec)
        return specs

    def make_tasks(self, split: str) -> list[Task]:
        return [
            Task(s["id"], s.get("instruction", ""), split, metadata={"reset": s["reset"]}) for s in self._splits[split]
        ]

    # ------------------------------------------------------------ the connection

    def _connect(self):
        if self._client is None:
            from openenv.core.generic_client import GenericEnvClient

            self._client = GenericEnvClient(base_url=self.url, message_timeout_s=self.timeout_s).sync()
            self._client.connect()
        if not self._schema_read:
            self._field = self._text_field()
            self._schema_read = True
        return self._client

    def _text_field(self) -> str | None:
        """The action's one text field, from the server's /schema (None: JSON actions)."""
        import urllib.request

        with urllib.request.urlopen(self.url + "/schema", timeout=self.timeout_s) as r:
            schema = json.loads(r.read())
        action = schema.get("action", {})
        fields = {k: v for k, v in (action.get("properties") or {}).items() if k != "metadata"}
        strings = [k for k, v in fields.items() if v.get("type") == "string"]
        return strings[0] if len(fields) == 1 and len(strings) == 1 else None

    def _call(self, what: str, fn):
        try:
            return fn()
        except Exception as exc:  # the server failed or dropped the session: an env failure
            self._drop()
            raise RuntimeError(f"OpenEnv server {self.url}: {what} failed: {type(exc).__name__}: {exc}") from exc

    def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # already gone
                self._client.close()
            self._client = None

    @staticmethod
    def _text(observation: dict[str, Any]) -> str:
        if isinstance(observation.get("text"), str):
            return observation["text"]
        rest = {k: v for k, v in observation.items() if k not in ("done", "reward", "metadata")}
        return json.dumps(rest, ensure_ascii=False, default=str)

    # ------------------------------------------------------------ episode

    def setup(self, task: Task) -> str:
        client = self._connect()
        result = self._call("reset", lambda: client.reset(**task.metadata["reset"]))
        self._last_success = False
        text = self._text(result.observation)
        return f"{task.instruction}\n\n{text}" if task.instruction else text

    def transition(self, action: str) -> Outcome:
        client = self._connect()
        if self._field is not None:
            payload = {self._field: action}
        else:
            try:
                payload = json.loads(action)
            except json.JSONDecodeError as exc:
                return Outcome(f"Invalid action: reply with a JSON object of the action's fields ({exc.msg})",
                               invalid=True)  # fmt: skip
            if not isinstance(payload, dict):
                return Outcome("Invalid action: reply with a JSON object of the action's fields", invalid=True)
        result = self._call("step", lambda: client.step(payload))
        obs = result.observation
        reward = float(result.reward or 0.0)
        success = bool(obs.get("success", reward > 0)) if result.done else False
        return Outcome(self._text(obs), reward=reward, terminated=bool(result.done) and not obs.get("truncated"),
                       success=success, info={"openenv": {k: v for k, v in obs.items() if k == "info"}})  # fmt: skip

    def close(self) -> None:
        self._drop()
        super().close()
