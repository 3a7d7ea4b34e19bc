"""`RolloutPool`: many episodes at once, envs in workers, the policy batched in the driver.

The pool keeps up to `max_concurrent` episodes in flight. The policy stays in this
process; envs live in workers (`agentgym.rollout.workers`): in-process ("local") or Ray
actors ("ray"), each hosting several envs. The loop:

1. start episodes on free env slots (an env reset in a worker);
2. generate, in one batch, for every episode that waits for the policy;
3. send the actions to the workers, one batched call per worker that returns a future;
4. take every env result that is ready, blocking only when no episode waits for the
   policy, so a slow env step (a browser) never stalls the episodes that are ready.

The token side of an episode (`Episode`) runs here for both backends, so they build
identical trajectories for the same seeds.

Fault isolation: an env exception ends its episode `aborted` with the traceback in
`Trajectory.error`. A call that runs past `step_timeout_s` ends its episode `aborted`; a
call still running at its deadline means the worker hangs, and a worker that dies
(SIGKILL, out of memory) is lost: in both cases the worker is replaced by a fresh actor
and every episode it hosted ends `aborted` too (they are not retried: a trainer masks
aborted episodes). A worker's batch of m calls may run for m x `step_timeout_s`; when
such a batch hangs, the pool cannot tell which of its calls hung, so all of them are
reported as timed out. The run goes on. The local backend runs its host on a thread of
its own when there is a timeout (`ThreadWorkers`), so a hung step is abandoned the same
way; without one it runs steps in the driver's thread, where a step cannot be interrupted.

Example:
    >>> with RolloutPool(env_maker("agentgym/GuessNumber-v0"), "agentgym/GuessNumber-v0",
    ...                  backend="ray", num_workers=4) as pool:
    ...     trajectories = pool.run(policy, specs, SamplingParams(64))
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
from tqdm import tqdm

from agentgym.policy.base import Policy, SamplingParams
from agentgym.rollout.episode import Episode, EpisodeSpec, RolloutOptions
from agentgym.rollout.metrics import RolloutStats
from agentgym.rollout.workers import LocalWorkers, RayWorkers, ThreadWorkers, WorkerLost
from agentgym.trajectory import Trajectory

__all__ = ["RolloutPool"]


class RolloutPool:
    """Runs episodes against a policy, with envs in local or Ray workers.

    Args:
        make_env: builds one env (for Ray it is pickled to the workers: use `env_maker`).
        env_id: recorded in the trajectories.
        backend: "local" (envs in this process) or "ray" (envs in Ray actors).
        num_workers: Ray actors (default: this machine's cores); local backend with a
            timeout: env threads (default 1; more isolate episodes from each other's hangs).
        envs_per_worker: envs per actor (default: enough for `max_concurrent`).
        address: Ray cluster address (default: a local Ray, unless one is initialised).
        step_timeout_s: an env reset or step that takes longer aborts its episode; None: no limit.
        max_concurrent: the most episodes in flight.
        actor_options: extra `ray.remote` options for the env actors.
    """

    def __init__(
        self,
        make_env: Callable[[], gym.Env],
        env_id: str,
        *,
        backend: Literal["local", "ray"] = "local",
        num_workers: int | None = None,
        envs_per_worker: int | None = None,
        address: str | None = None,
        step_timeout_s: float | None = None,
        max_concurrent: int = 64,
        actor_options: dict[str, Any] | None = None,
    ):
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        if step_timeout_s is not None and step_timeout_s <= 0:
            raise ValueError(f"step_timeout_s must be positive or None, got {step_timeout_s}")
        self.env_id, self.backend, self.step_timeout_s = env_id, backend, step_timeout_s
        self.workers: LocalWorkers | ThreadWorkers | RayWorkers
        if backend == "local" and step_timeout_s is None:
            self.workers = LocalWorkers(make_env, max_concurrent)
        elif backend == "local":  # hosts on threads of their own, so a hung step can be abandoned
            n = num_workers or 1
            self.workers = ThreadWorkers(make_env, n, envs_per_worker or math.ceil(max_concurrent / n))
        elif backend == "ray":
            n = num_workers or os.cpu_count() or 1
            per = envs_per_worker or math.ceil(max_concurrent / n)
            self.workers = RayWorkers(make_env, n, per, address, actor_options)
        else:
            raise ValueError(f'backend must be "local" or "ray", got {backend!r}')
        slots = self.workers.slots_per_worker
        self.max_concurrent = min(max_concurrent, self.workers.num_workers * slots)
        self.free = {w: list(range(slots - 1, -1, -1)) for w in range(self.workers.num_workers)}

    @classmethod
    def from_config(cls, cfg: Any, make_env: Callable[[], gym.Env], env_id: str) -> RolloutPool:
        """A pool from a `RolloutConfig`."""
        return cls(
            make_env,
            env_id,
            backend=cfg.backend,
            num_workers=cfg.num_workers,
            address=cfg.address,
            step_timeout_s=cfg.step_timeout_s,
            max_concurrent=cfg.max_concurrent,
        )

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every env and stop the workers (and Ray, if this pool started it)."""
        self.workers.close()

    # ------------------------------------------------------------------ the loop

    def run(
        self,
        policy: Policy,
        specs: Sequence[EpisodeSpec],
        sampling: SamplingParams,
        options: RolloutOptions | None = None,
        *,
        progress: bool | str = False,
        stats: RolloutStats | None = None,
    ) -> list[Trajectory]:
        """Run every episode in `specs`; trajectories in spec order.

        Args:
            policy: generates for all waiting episodes in one batch.
            specs: the episodes (task, horizon, sample index, reset seed).
            sampling: per-turn sampling (`max_new_tokens` is the per-turn token budget).
            options: context window and strategy, budgets, test-time options.
            progress: show a progress bar (a string sets its label).
            stats: filled with measurements for `rollout_metrics` if given.
        """
        options = options or RolloutOptions(max_new_tokens=sampling.max_new_tokens)
        run = _Run(self, policy, sampling, options, stats if stats is not None else RolloutStats(), len(specs))
        bar = tqdm(
            total=len(specs),
            desc=progress if isinstance(progress, str) else "episodes",
            disable=not progress,
            unit="ep",
            dynamic_ncols=True,
        )
        run.on_finish = lambda: bar.update(1)
        start = time.perf_counter()
        tokens0 = run.stats.generated_tokens

        def report(batch: int) -> None:
            # Episodes that advance together finish together: show the turns as they go.
            rate = (run.stats.generated_tokens - tokens0) / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix_str(f"batch {batch}, {len(run.active)} in flight, {rate:.0f} tok/s")

        run.on_generate = report
        try:
            run.loop(deque(enumerate(specs)))
        finally:
            bar.close()
        run.stats.episodes += len(specs)
        run.stats.seconds += time.perf_counter() - start
        return run.results  # type: ignore[return-value]


class _Run:
    """The state of one `RolloutPool.run` call.

    Env calls are sent to each worker in one batch per round (`EnvHost.run`): a Ray call
    costs far more than a fast env step, and a worker runs its calls one after another
    anyway, so batching loses no overlap between workers.
    """

    def __init__(self, pool: RolloutPool, policy: Policy, sampling: SamplingParams, options, stats, n: int):
        self.pool, self.workers, self.policy = pool, pool.workers, policy
        self.sampling, self.options, self.stats = sampling, options, stats
        self.results: list[Trajectory | None] = [None] * n
        self.active: dict[int, Episode] = {}
        self.place: dict[int, tuple[int, int]] = {}  # episode -> (worker, slot)
        self.outbox: dict[int, list[tuple[int, tuple]]] = {}  # worker -> [(episode, call)] to send
        self.calls: dict[Any, tuple[list[int], float]] = {}  # pending batch -> (episodes, submitted at)
        self.last_done = [0.0] * self.workers.num_workers  # when each worker last returned a result
        self.on_finish: Callable[[], None] = lambda: None
        self.on_generate: Callable[[int], None] = lambda batch: None

    def loop(self, queue: deque[tuple[int, EpisodeSpec]]) -> None:
        pool, stats = self.pool, self.stats
        while queue or self.active:
            while queue and len(self.active) < pool.max_concurrent:
                self.admit(*queue.popleft())
            waiting = [(i, ep) for i, ep in self.active.items() if ep.state == "policy"]
            if waiting:
                self.generate(waiting)
            self.flush()
            if not self.calls:
                continue
            # Block on the envs only when no episode waits for the policy, or always for
            # in-process workers: their rounds complete before the next generation.
            idle = self.workers.synchronous or not any(ep.state == "policy" for ep in self.active.values())
            t0 = time.perf_counter()
            ready = self.workers.wait(list(self.calls), self.time_to_deadline() if idle else 0.0)
            stats.env_seconds += time.perf_counter() - t0
            for handle in ready:
                if handle in self.calls:  # a lost worker's other calls are already gone
                    self.collect(handle)
            self.enforce_deadlines()

    def admit(self, index: int, spec: EpisodeSpec) -> None:
        free = self.pool.free
        worker = max(free, key=lambda w: len(free[w]))  # spread episodes over the workers
        ep = Episode(self.pool.env_id, spec, self.policy.tokenizer, self.options)
        self.active[index], self.place[index] = ep, (worker, free[worker].pop())
        self.send(index, "reset", spec.seed, ep.reset_options())

    def send(self, index: int, method: str, *args: Any) -> None:
        worker, slot = self.place[index]
        self.outbox.setdefault(worker, []).append((index, (method, slot, *args)))

    def flush(self) -> None:
        """Send each worker its batch of calls."""
        for worker, items in self.outbox.items():
            t0 = time.perf_counter()
            handle = self.workers.submit(worker, "run", [call for _, call in items])
            self.stats.env_seconds += time.perf_counter() - t0  # in-process calls run here
            self.calls[handle] = ([index for index, _ in items], t0)
        self.outbox = {}

    def generate(self, waiting: list[tuple[int, Episode]]) -> None:
        stats = self.stats
        t0 = time.perf_counter()
        gens = self.policy.generate(
            [ep.context_ids for _, ep in waiting], self.sampling, [ep.messages for _, ep in waiting]
        )
        stats.generate_seconds += time.perf_counter() - t0
        stats.policy_calls += 1
        stats.batch_sizes.append(len(waiting))
        for (index, ep), gen in zip(waiting, gens, strict=True):
            stats.generated_tokens += len(gen.token_ids)
            stats.context_lengths.append(len(ep.context_ids))
            action = ep.act(gen)
            if ep.done:
                self.finish(index)
            elif action is not None:
                self.send(index, "step", action)
        self.on_generate(len(waiting))

    def collect(self, handle: Any) -> None:
        indices, _ = self.calls.pop(handle)
        worker = self.place[indices[0]][0]
        try:
            results = self.workers.result(handle)
        except WorkerLost as exc:
            self.lose_worker(worker, f"env worker {worker} was lost: {exc}")
            return
        self.last_done[worker] = time.perf_counter()
        for index, result in zip(indices, results, strict=True):
            self.apply(index, *result)

    def apply(self, index: int, ok: bool, payload: Any, seconds: float) -> None:
        self.stats.step_latencies.append(seconds)
        ep, timeout = self.active[index], self.pool.step_timeout_s
        if not ok:
            ep.abort(payload)
        elif timeout is not None and seconds > timeout:
            ep.abort(f"StepTimeout: the env took {seconds:.2f} s, past step_timeout_s={timeout}")
            self.workers.discard(*self.place[index])
        elif ep.state == "reset":
            ep.on_reset(*payload)
        else:
            ep.on_step(*payload)
        if ep.done:
            self.finish(index)

    def finish(self, index: int) -> None:
        ep = self.active.pop(index)
        worker, slot = self.place.pop(index)
        self.pool.free[worker].append(slot)
        self.results[index] = ep.traj
        self.stats.compressions.extend(ep.compressions)
        self.on_finish()

    # ------------------------------------------------------------------ hung and lost workers

    def running(self) -> dict[int, tuple[float, list[int]]]:
        """For each busy worker: the deadline of its current batch, and its episodes. A
        worker runs its batches one at a time in order, so the current one is its oldest,
        started when it was submitted or when the previous one returned; each call in it
        may take `step_timeout_s`."""
        heads: dict[int, tuple[float, list[int]]] = {}
        for indices, submitted in self.calls.values():
            worker = self.place[indices[0]][0]
            if worker not in heads or submitted < heads[worker][0]:
                heads[worker] = (submitted, indices)
        timeout = self.pool.step_timeout_s or 0.0
        return {w: (max(t, self.last_done[w]) + timeout * len(ix), ix) for w, (t, ix) in heads.items()}

    def time_to_deadline(self) -> float | None:
        if self.pool.step_timeout_s is None:
            return None
        deadlines = [d for d, _ in self.running().values()]
        return max(0.0, min(deadlines) - time.perf_counter()) if deadlines else None

    def enforce_deadlines(self) -> None:
        timeout = self.pool.step_timeout_s
        if timeout is None or not self.workers.interruptible:
            return
        now = time.perf_counter()
        for worker, (deadline, indices) in self.running().items():
            if now > deadline:
                which = "call" if len(indices) == 1 else f"batch of {len(indices)} calls (one of them)"
                cause = f"StepTimeout: the env {which} ran past step_timeout_s={timeout}; the worker was replaced"
                self.lose_worker(worker, cause, culprits=set(indices))

    def lose_worker(self, worker: int, cause: str, culprits: set[int] | None = None) -> None:
        """Abort every episode hosted on `worker` and replace it by a fresh one."""
        for handle, (indices, _) in list(self.calls.items()):
            if self.place[indices[0]][0] == worker:
                del self.calls[handle]
        for index in [i for i, (w, _) in self.place.items() if w == worker]:
            hit = culprits is None or index in culprits
            self.active[index].abort(cause if hit else f"WorkerRestarted: another episode's env failed: {cause}")
            self.finish(index)
        self.workers.restart(worker)
        self.last_done[worker] = time.perf_counter()
        self.stats.worker_restarts += 1
