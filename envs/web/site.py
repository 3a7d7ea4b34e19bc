"""SiteEnv: the browser env on a user's own local web app, with the user's own tasks.

The same observation and tools as the built-in web envs (URL, title, accessibility outline
with refs; click, type, select, scroll, goto, back, answer: `WebEnv`'s code), the same
loopback sandbox, and checks that read the final state. A site config (YAML, or a dict):

    site:
      command: "{python} -m http.server {port} --bind 127.0.0.1"   # started by the env ...
      ready: /                     # ... and ready when this path answers 2xx
      # url: http://127.0.0.1:8001 # or: already running there (then the env starts nothing)
      start_path: /
      allowed_origins: []          # more origins the browser may reach (default: the site's own)
      state: read_only             # read_only | reset | fresh (see below)
      reset: {url: /__reset, method: POST}   # or {command: "..."}: run before every episode
      database: app.db             # a SQLite file the checks may read (optional)
      startup_timeout_s: 30
    tasks: tasks.jsonl             # or module:function (see site_tasks.py)

`state` says how episodes are kept apart: `read_only` (the site keeps no state: one site
per process serves every env in it), `reset` (each env starts its own site and calls the
reset hook before every episode; with `url`, one env at a time may use the site, which a
lock file enforces across processes), `fresh` (a new site process for every episode).
Paths in the config are relative to its file; commands may use {port}, {host}, {python}
and {dir} (the config's folder).

A site that dies during an episode aborts that episode (an env failure, not the agent's);
the next episode starts it again.

    agentgym eval env.id=agentgym/Site-v0 'env.kwargs={config: mysite.yaml}'
    agentgym.envs.web.site.register_site("MySite-v0", "mysite.yaml")   # then env.id=agentgym/MySite-v0
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from agentgym.envs.web.browser import BrowserTab, check_thread
from agentgym.envs.web.env import WebEnv
from agentgym.envs.web.site_tasks import FinalPage, TaskFileError, load_site_tasks, run_checks

from agentgym.env import Outcome, Task

__all__ = ["SiteConfig", "SiteDied", "SiteEnv", "SiteProcess", "load_site_config", "register_site"]

STATES = ("read_only", "reset", "fresh")
#: How long a site process whose page failed to load gets to finish exiting before the
#: failure counts as the agent's (a process's sockets close before it can be reaped).
DYING_S = 2.0


class SiteDied(RuntimeError):
    """The site stopped answering during an episode: the episode aborts (an env failure)."""


@dataclass
class SiteConfig:
    """A site and its tasks (see the module docstring); `base` is the config file's folder."""

    tasks: Any
    command: str | list[str] | None = None
    url: str | None = None
    ready: str = "/"
    start_path: str = "/"
    allowed_origins: list[str] = field(default_factory=list)
    state: str = "read_only"
    reset: dict[str, Any] | None = None
    database: str | None = None
    startup_timeout_s: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    base: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        where = f"site config ({self.base})"
        if (self.command is None) == (self.url is None):
            raise ValueError(f"{where}: site needs exactly one of command (the env starts it) or url (already running)")
        if self.url is not None:
            host = re.match(r"https?://([^/:]+)", self.url)
            if not host or host.group(1) not in ("127.0.0.1", "localhost", "[::1]"):
                raise ValueError(
                    f"{where}: site.url must be a loopback address like http://127.0.0.1:8001, got {self.url!r}"
                )
        if self.state not in STATES:
            raise ValueError(f"{where}: site.state must be one of {list(STATES)}, got {self.state!r}")
        if self.state == "fresh" and self.url is not None:
            raise ValueError(f"{where}: site.state fresh starts a site per episode: it needs site.command, not url")
        if self.reset is not None and not (
            isinstance(self.reset, dict) and ("url" in self.reset) != ("command" in self.reset)
        ):
            raise ValueError(f"{where}: site.reset is {{url: /path, method: POST}} or {{command: '...'}}")
        if self.state == "reset" and self.reset is None:
            raise ValueError(f"{where}: site.state reset needs site.reset (the hook that restores the site's state)")
        for path in (self.ready, self.start_path):
            if not path.startswith("/"):
                raise ValueError(f"{where}: ready and start_path are paths on the site, like /, got {path!r}")

    @property
    def key(self) -> str:
        return hashlib.sha256(repr((self.command, self.url, str(self.base), self.database)).encode()).hexdigest()[:16]

    def expand(self, text: str, port: int) -> str:
        return text.format(
            port=port, host="127.0.0.1", python=shlex.quote(sys.executable), dir=shlex.quote(str(self.base))
        )

    def argv(self, port: int) -> list[str]:
        if isinstance(self.command, list):
            return [self.expand(a, port) for a in self.command]
        return shlex.split(self.expand(self.command, port))


def load_site_config(config: str | Path | dict[str, Any] | SiteConfig) -> SiteConfig:
    """A `SiteConfig` from a YAML file or a dict ({site: {...}, tasks: ...})."""
    if isinstance(config, SiteConfig):
        return config
    base = Path.cwd()
    if isinstance(config, str | Path):
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"site config {path}: no such file")
        data = yaml.safe_load(path.read_text()) or {}
        base = path.resolve().parent
    else:
        data = dict(config)
        base = Path(data.pop("base", base))
    if not isinstance(data, dict) or "site" not in data or "tasks" not in data:
        raise ValueError(
            f"site config {config}: needs a `site:` section and `tasks:` (a JSONL file or module:function)"
        )
    site = dict(data["site"] or {})
    known = set(SiteConfig.__dataclass_fields__) - {"tasks", "base"}
    unknown = set(site) - known
    if unknown:
        raise ValueError(f"site config {config}: unknown keys site.{sorted(unknown)}; site has {sorted(known)}")
    return SiteConfig(tasks=data["tasks"], base=base, **site)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SiteProcess:
    """A site the env started: its command on a free loopback port, ready when `ready`
    answers 2xx; stopped (its whole process group) with the env or at exit."""

    def __init__(self, cfg: SiteConfig):
        self.cfg = cfg
        self.port = _free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="agentgym-site-", suffix=".log", delete=False)  # noqa: SIM115
        argv = cfg.argv(self.port)
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=cfg.base,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopping it stops its children
                env={**os.environ, **cfg.env},
            )
        except OSError as exc:
            raise RuntimeError(f"site.command {shlex.join(argv)!r} could not start: {exc}") from None
        atexit.register(self.stop)
        self._wait_ready(argv)

    def _wait_ready(self, argv: list[str]) -> None:
        deadline = time.monotonic() + self.cfg.startup_timeout_s
        url = self.origin + self.cfg.ready
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"site.command {shlex.join(argv)!r} exited with status {self.proc.returncode} before {url} "
                    f"answered; its output ends: {self.output_tail()}"
                )
            if _answers(url):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"site {url} did not answer within {self.cfg.startup_timeout_s:g} s (site.startup_timeout_s); "
            f"its output ends: {self.output_tail()}"
        )

    def output_tail(self, chars: int = 600) -> str:
        try:
            return Path(self.log.name).read_text(errors="replace")[-chars:].strip() or "(nothing)"
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (ProcessLookupError, PermissionError):
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def _answers(url: str, method: str = "GET", timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


_shared: dict[str, SiteProcess] = {}  # read-only sites: one per config per process
_shared_lock = threading.Lock()


class SiteEnv(WebEnv):
    """The web env on your own local site, with your tasks (env.kwargs: {config: site.yaml}).

    Args:
        config: a site config: a YAML file, a dict, or a `SiteConfig`.
        **kwargs: `WebEnv` arguments (max_obs_chars, action_timeout_ms, max_turns, split...).
    """

    def __init__(self, config: str | Path | dict[str, Any] | SiteConfig, **kwargs: Any):
        self.site_cfg = load_site_config(config)
        self.site_tasks = load_site_tasks(self.site_cfg.tasks, self.site_cfg.base)
        super().__init__(**kwargs)
        self.site: SiteProcess | None = None  # the site this env started (reset and fresh states)
        self._lock_file = None

    def make_tasks(self, split: str) -> list[Task]:
        return [t for t in self.site_tasks if t.split == split]

    # ------------------------------------------------------------ the site

    def _origin(self) -> str:
        """The site's origin, starting it (or restarting a dead one) as its state says."""
        cfg = self.site_cfg
        if cfg.url is not None:
            if cfg.state == "reset":
                self._hold_url_lock()
            return cfg.url.rstrip("/")
        if cfg.state == "read_only":
            with _shared_lock:
                site = _shared.get(cfg.key)
                if site is None or not site.alive():
                    site = _shared[cfg.key] = SiteProcess(cfg)
                self.site = site
                return site.origin
        if cfg.state == "fresh" and self.site is not None:
            self.site.stop()
            self.site = None
        if self.site is None or not self.site.alive():
            self.site = SiteProcess(cfg)
        return self.site.origin

    def _hold_url_lock(self) -> None:
        """One env at a time on a running site whose state a reset hook restores."""
        if self._lock_file is not None:
            return
        path = Path(tempfile.gettempdir()) / f"agentgym-site-{self.site_cfg.key}.lock"
        fh = open(path, "w")  # noqa: SIM115 (held for the env's life)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise RuntimeError(
                f"the site at {self.site_cfg.url} is already used by another env: concurrent episodes would share "
                "its state. Give site.command so each env starts its own site, or declare site.state: read_only"
            ) from None
        self._lock_file = fh

    def _reset_site(self, origin: str) -> None:
        hook = self.site_cfg.reset
        if hook is None:
            return
        if "url" in hook:
            url = origin + hook["url"] if hook["url"].startswith("/") else hook["url"]
            if not _answers(url, hook.get("method", "POST").upper(), timeout=30):
                raise RuntimeError(f"site.reset: {hook.get('method', 'POST')} {url} did not answer 2xx")
            return
        port = int(origin.rsplit(":", 1)[1])
        argv = shlex.split(self.site_cfg.expand(hook["command"], port))
        done = subprocess.run(argv, cwd=self.site_cfg.base, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"site.reset command {shlex.join(argv)!r} failed: {(done.stderr or done.stdout)[-400:]}")

    def _check_alive(self, failed: bool = False) -> None:
        """`SiteDied` when the site's process has exited. `failed`: a page load failed at the
        network level (or the tab shows Chromium's error page), as a dying site's do."""
        if self.site is None:
            return
        failed = failed or (self.tab is not None and self.tab.page.url.startswith("chrome-error://"))
        if failed and self.site.alive():
            # A navigation failed and the process still runs: it may be dying (its sockets
            # close before it can be reaped), so it gets a moment before the page counts
            # as the agent's own error.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.site.proc.wait(DYING_S)
        if not self.site.alive():
            raise SiteDied(
                f"the site stopped (exit status {self.site.proc.returncode}) during the episode; its output ends: "
                f"{self.site.output_tail()}"
            )

    # ------------------------------------------------------------ episode

    def setup(self, task: Task) -> str:
        check_thread()
        self._release()
        origin = self._origin()
        self._reset_site(origin)
        extra = [o.rstrip("/") for o in self.site_cfg.allowed_origins]
        self.tab = BrowserTab(origin, {}, self.action_timeout_ms, also_allowed=extra)
        blocked = [re.compile(b) for b in task.metadata.get("blocked", [])]
        if blocked:
            self.tab.context.route(
                lambda url: any(b.search(url) for b in blocked),
                lambda route: route.abort("blockedbyclient"),
            )
        self.tab.run("opening the site", lambda: self.tab.goto(origin + task.metadata.get("start", "/")))
        self._check_alive()
        self.outline, self.offset = None, 0
        return f"{task.instruction}\n\n{self.observe()}"

    def _release(self) -> None:
        if self.tab is not None:
            self.tab.close()
            self.tab = None

    def close(self) -> None:
        self._release()
        if self.site is not None and self.site_cfg.state != "read_only":
            self.site.stop()
        self.site = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        super().close()

    def observe(self) -> str:
        self._check_alive()
        text = super().observe()
        external = self.site_cfg.url
        on_error = self.tab is not None and self.tab.page.url.startswith("chrome-error://")
        if on_error and external is not None and not _answers(external.rstrip("/") + self.site_cfg.ready):
            raise SiteDied(f"the site at {external} stopped answering during the episode")
        return text

    def run_calls(self, calls):
        # A tool that failed because the site died is the env's failure, not the agent's: the
        # episode aborts instead of showing the agent an error.
        outcome = super().run_calls(calls)
        # A load that failed at the network level (Chromium's net::ERR_...) is how a dying
        # site looks from the browser.
        self._check_alive(failed="net::ERR_" in outcome.observation)
        return outcome

    def on_answer(self, answer: str) -> Outcome:
        self._check_alive()
        tab = self._tab()
        url, title, tree = tab.read()
        text = tab.page.inner_text("body") if tab.page.url.startswith(("http://", "https://")) else ""
        page = FinalPage(url, title, tree, text)
        db = None
        if self.site_cfg.database:
            path = Path(self.site_cfg.database)
            path = path if path.is_absolute() else self.site_cfg.base / path
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            success, why = run_checks(self.current_task, answer, page, db)
        finally:
            if db is not None:
                db.close()
        verdict = "The task is solved." if success else f"The task is not solved: {why}."
        return Outcome(f"Answer received. {verdict}", reward=float(success), terminated=True, success=success,
                       info={"check": why})  # fmt: skip


def register_site(env_id: str, config: str | Path | dict[str, Any], **kwargs: Any) -> str:
    """Register a site config as an env id (e.g. "MySite-v0" -> "agentgym/MySite-v0")."""
    import agentgym

    if isinstance(config, str | Path):
        config = str(Path(config).resolve())
    load_site_config(config)  # a bad config fails here, not in a worker
    return agentgym.register(env_id, f"{__name__}:SiteEnv", config=config, **kwargs)


__all__ += ["TaskFileError"]
