"""Where envs live: an `EnvHost` holds several envs and runs their resets and steps.

`LocalWorkers` keeps one host in this process and runs its calls at once, in the
caller's thread: no overhead, but a hung step hangs the run. `ThreadWorkers` (the local
backend with a step timeout, the default in evaluation and training) runs hosts on
threads of their own, so the driver can stop waiting for a call that hangs: that host
and its thread are abandoned and a fresh one takes its place. `RayWorkers` runs hosts as Ray
actors: calls return futures, so slow env steps overlap with each other and with
generation. Every host runs all its calls on one thread (Ray's default for a sync actor,
kept here), so a web env is always stepped from the thread that created it (Playwright's
sync API requires it).

An env exception is caught in the host and returned as an error (the env is discarded,
its episode aborted); a host that dies (SIGKILL, out of memory) or hangs past a timeout
is replaced by a fresh actor (`restart`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ALL_COMPLETED, Future
from concurrent.futures import wait as futures_wait
from typing import Any

import gymnasium as gym

from agentgym.trajectory import json_safe
from agentgym.wrappers import episode_env

__all__ = ["EnvHost", "LocalWorkers", "RayWorkers", "ThreadWorkers", "WorkerLost", "env_maker", "init_ray"]


def env_maker(env_id: str, **kwargs: Any) -> Callable[[], gym.Env]:
    """A picklable env factory that carries the registry entry of `env_id`, so processes
    where the id was never registered (Ray workers, for an env registered at run time)
    can build it too."""
    return functools.partial(gym.make, gym.spec(env_id), **kwargs)


def _error(exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
    return f"{type(exc).__name__}: {exc}\n{tb[-2000:]}"


class EnvHost:
    """Several envs, addressed by slot; built on first use with `make_env`.

    Every call returns `(ok, payload, seconds)`: `ok` False means the env raised, and
    `payload` is the error text (the env is closed and rebuilt on its slot's next use).
    `seconds` is the env's own time, without any transport.
    """

    def __init__(self, make_env: Callable[[], gym.Env]):
        self.make_env = make_env
        self.envs: dict[int, gym.Env] = {}
        self.episodes: dict[int, gym.Env] = {}  # each slot's env in the wrappers of its current episode

    def ping(self) -> int:
        """The process id of this host; that it answers at all means it is up."""
        return os.getpid()

    def reset(self, slot: int, seed: int | None, options: dict[str, Any]) -> tuple[bool, Any, float]:
        """Reset the env of `slot`: payload = (observation, action_format, tool_schemas).

        `options["wrappers"]` (taken out of the env's options) names the episode's
        wrappers (`agentgym.wrappers.episode_env`): each episode gets its own."""
        t0 = time.perf_counter()
        try:
            if slot not in self.envs:
                self.envs[slot] = self.make_env()
            options = dict(options)
            env = self.episodes[slot] = episode_env(self.envs[slot], options.pop("wrappers", ()))
            observation, _ = env.reset(seed=seed, options=options)
            base = env.unwrapped
            payload = (observation, base.action_format, base.tool_schemas)
        except Exception as exc:
            self.discard(slot)
            return False, _error(exc), time.perf_counter() - t0
        return True, payload, time.perf_counter() - t0

    def step(self, slot: int, action: str) -> tuple[bool, Any, float]:
        """Step the env of `slot`: payload = (observation, reward, terminated, truncated, info),
        with only the JSON-safe entries of info (tool schemas stay here)."""
        t0 = time.perf_counter()
        try:
            observation, reward, terminated, truncated, info = self.episodes[slot].step(action)
            payload = (observation, float(reward), bool(terminated), bool(truncated), json_safe(info))
        except Exception as exc:
            self.discard(slot)
            return False, _error(exc), time.perf_counter() - t0
        return True, payload, time.perf_counter() - t0

    def run(self, calls: list[tuple]) -> list[tuple[bool, Any, float]]:
        """Several calls in order, `(method, slot, *args)` each: one round trip for a batch."""
        return [getattr(self, method)(slot, *args) for method, slot, *args in calls]

    def discard(self, slot: int) -> None:
        """Close and forget the env of `slot` (its state is not trusted any more)."""
        self.episodes.pop(slot, None)
        env = self.envs.pop(slot, None)
        if env is not None:
            # An env that failed may fail to close too; it is dropped either way.
            with contextlib.suppress(Exception):
                env.close()

    def close(self) -> None:
        for slot in list(self.envs):
            self.discard(slot)


class WorkerLost(RuntimeError):
    """A worker process died or could not be reached; its envs are gone."""


class _Done:
    """A finished in-process call (the local backend's future)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


#: Ray's switch for clusters across machines (off on macOS and Windows, where Ray then
#: keeps every server on the loopback address); off is how a local Ray stays on it here too.
_RAY_CLUSTER_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """`ray.init` as agentgym starts Ray: with `address`, connect to that cluster; without,
    start a local Ray whose every server (GCS, raylet, workers, agents) listens on
    127.0.0.1 only. Ray's own default replaces 127.0.0.1 by the machine's network address
    and listens on all interfaces: an unauthenticated cluster open to the network.

    Args:
        address: a cluster to join (e.g. "auto", "10.0.0.5:6379"); None: a local Ray.
        **kwargs: more `ray.init` arguments (the dashboard is off unless asked for).
    """
    import ray

    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("log_to_driver", True)
    if address is not None:
        ray.init(address=address, **kwargs)
        return
    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray without that module: the variable alone
        ray_constants = None
    saved_var, saved_flag = os.environ.get(_RAY_CLUSTER_VAR), getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_RAY_CLUSTER_VAR] = "0"  # for the processes Ray starts
    if saved_flag is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False  # this process read it when it imported Ray
    try:
        ray.init(_node_ip_address="127.0.0.1", **kwargs)
    finally:
        if saved_var is None:
            os.environ.pop(_RAY_CLUSTER_VAR, None)
        else:
            os.environ[_RAY_CLUSTER_VAR] = saved_var
        if saved_flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = saved_flag


class LocalWorkers:
    """One in-process `EnvHost`; calls run immediately in the caller's thread (so a step
    that hangs cannot be interrupted: see `ThreadWorkers`)."""

    interruptible = False
    synchronous = True

    def __init__(self, make_env: Callable[[], gym.Env], slots: int):
        self.hosts = [EnvHost(make_env)]
        self.slots_per_worker = slots
        self.num_workers = 1

    def submit(self, worker: int, method: str, *args: Any) -> _Done:
        return _Done(getattr(self.hosts[worker], method)(*args))

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        return list(handles)

    def result(self, handle: _Done) -> Any:
        return handle.value

    def discard(self, worker: int, slot: int) -> None:
        self.hosts[worker].discard(slot)

    def restart(self, worker: int) -> None:
        self.hosts[worker].close()

    def close(self) -> None:
        for host in self.hosts:
            host.close()


class _HostThread:
    """An `EnvHost` whose calls run, in order, on a daemon thread of its own."""

    def __init__(self, make_env: Callable[[], gym.Env]):
        self.host = EnvHost(make_env)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="agentgym-env-host", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while (item := self.inbox.get()) is not None:
            method, args, future = item
            try:
                future.set_result(getattr(self.host, method)(*args))
            except BaseException as exc:  # EnvHost catches env errors; this is a bug of ours
                future.set_exception(exc)

    def call(self, method: str, *args: Any) -> Future:
        future: Future = Future()
        self.inbox.put((method, args, future))
        return future

    def stop(self) -> None:
        """No more calls: the thread ends after the one it runs (a hung one never ends; the
        thread is a daemon, so it does not keep the process alive)."""
        self.inbox.put(None)


class ThreadWorkers:
    """The local backend with step timeouts that work: `num_workers` `EnvHost`s, each on a
    thread of its own with `slots_per_worker` envs (one worker by default: web envs then
    share one browser).

    The pool waits for all of a round's calls (`synchronous`: the next generation sees the
    same episodes as with `LocalWorkers`, so runs stay reproducible), until the deadline.
    A worker whose call hangs past it is abandoned with its thread and envs (`restart`: a
    fresh host on a fresh thread takes its place); the episodes it hosted end aborted,
    the others go on. More workers isolate episodes from each other's hangs.
    """

    interruptible = True
    synchronous = True

    def __init__(self, make_env: Callable[[], gym.Env], num_workers: int, slots_per_worker: int):
        self.make_env = make_env
        self.hosts = [_HostThread(make_env) for _ in range(num_workers)]
        self.num_workers, self.slots_per_worker = num_workers, slots_per_worker

    def submit(self, worker: int, method: str, *args: Any) -> Future:
        return self.hosts[worker].call(method, *args)

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        """The handles that are done, once all are or `timeout` passes."""
        done, _ = futures_wait(handles, timeout=timeout, return_when=ALL_COMPLETED)
        return [h for h in handles if h in done]

    def result(self, handle: Future) -> Any:
        return handle.result()

    def discard(self, worker: int, slot: int) -> None:
        self.hosts[worker].call("discard", slot)  # on the host's thread: its envs are touched only there

    def restart(self, worker: int) -> None:
        self.hosts[worker].stop()
        self.hosts[worker] = _HostThread(self.make_env)

    def close(self) -> None:
        futures_wait([h.call("close") for h in self.hosts], timeout=10)  # a hung host's envs are dropped
        for host in self.hosts:
            host.stop()


class RayWorkers:
    """`num_workers` Ray actors, each an `EnvHost` with `slots_per_worker` envs.

    Args:
        make_env: env factory, pickled to the actors (see `env_maker`).
        num_workers: actors.
        slots_per_worker: envs per actor.
        address: an existing cluster (`ray.init(address=...)`); None starts a local Ray
            with this machine's cores, listening on 127.0.0.1 only (`init_ray`), unless Ray
            is already initialised in this process.
        actor_options: extra `ray.remote` options of the actors.
    """

    interruptible = True
    synchronous = False

    def __init__(
        self,
        make_env: Callable[[], gym.Env],
        num_workers: int,
        slots_per_worker: int,
        address: str | None = None,
        actor_options: dict[str, Any] | None = None,
    ):
        import ray

        self.ray = ray
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            init_ray(address, **({"num_cpus": os.cpu_count()} if address is None else {}))
        # Env steps wait on I/O (browsers, servers) far more than they compute, so actors
        # reserve no CPU: 8 of them on a 2-core machine is the point of the pool.
        options = {"num_cpus": 0, "max_restarts": 0, "max_concurrency": 1, **(actor_options or {})}
        self.actor_cls = ray.remote(EnvHost).options(**options)
        self.make_env = make_env
        self.num_workers, self.slots_per_worker = num_workers, slots_per_worker
        self.hosts = [self.actor_cls.remote(make_env) for _ in range(num_workers)]
        # Wait until every actor is up: step deadlines count from submission, and an
        # actor's start-up must not be charged to its first episodes' steps.
        ray.get([h.ping.remote() for h in self.hosts])

    def submit(self, worker: int, method: str, *args: Any) -> Any:
        return getattr(self.hosts[worker], method).remote(*args)

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        """The handles that are done: at least one unless `timeout` passes first."""
        ready, rest = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def result(self, handle: Any) -> Any:
        try:
            return self.ray.get(handle)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.ActorUnavailableError) as exc:
            raise WorkerLost(f"{type(exc).__name__}: {str(exc)[:1500]}") from exc

    def discard(self, worker: int, slot: int) -> None:
        self.hosts[worker].discard.remote(slot)

    def restart(self, worker: int) -> None:
        """Replace an actor that died or hangs by a fresh one (its envs are lost)."""
        self.ray.kill(self.hosts[worker], no_restart=True)
        self.hosts[worker] = self.actor_cls.remote(self.make_env)

    def close(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            return
        with contextlib.suppress(Exception):  # best effort: the actors are killed next
            ray.get([h.close.remote() for h in self.hosts], timeout=10)
        for h in self.hosts:
            ray.kill(h, no_restart=True)
        if self.owns_ray:
            ray.shutdown()
