"""The rollout pool: Ray and in-process backends, fault isolation, asynchrony, metrics.

One Ray session is shared by the module (starting Ray costs seconds).
"""

import json
import os
import signal
import time

import gymnasium
import pytest

import agentgym
from agentgym import Outcome, Task, TextEnv
from agentgym.policy import SamplingParams, ScriptedPolicy
from agentgym.rollout import (
    EpisodeSpec,
    RolloutOptions,
    RolloutPool,
    RolloutStats,
    env_maker,
    rollout_metrics,
    write_rollout,
)
from agentgym.rollout.context import SummarizeConfig
from agentgym.rollout.workers import init_ray
from tests.test_context import KV, KV_KWARGS, kv_agent
from tests.test_rollout import ENV as GUESS
from tests.test_rollout import bisect

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session():
    init_ray(num_cpus=2, log_to_driver=False)
    yield
    ray.shutdown()


class Sleepy(TextEnv):
    """Each step sleeps as its task says; the episode succeeds after `turns` steps; a
    task may raise at a given turn."""

    def make_tasks(self, split):
        return [
            Task(f"{split}-{name}", "Say anything.", split, metadata=meta)
            for name, meta in {
                "fast": {"sleep": 0.0, "turns": 5},
                "slow": {"sleep": 1.5, "turns": 2},
                "nap": {"sleep": 0.3, "turns": 3},
                "hang": {"sleep": 60.0, "turns": 2},
                "crash": {"sleep": 0.0, "turns": 3, "crash_at": 2},
            }.items()
        ]

    def setup(self, task):
        self.meta = task.metadata
        return f"Task {task.id}. {task.instruction}"

    def transition(self, action):
        if self.turn + 1 == self.meta.get("crash_at"):
            raise RuntimeError(f"env crashed at turn {self.turn + 1}")
        time.sleep(self.meta["sleep"])
        return Outcome(f"turn {self.turn + 1} done", terminated=self.turn + 1 >= self.meta["turns"], success=True)


SLEEPY = agentgym.register("Sleepy-test-v0", Sleepy)


def say(text="ok"):
    return lambda msgs: text


def pool(backend="ray", **kwargs):
    kwargs.setdefault("num_workers", 2)
    return RolloutPool(env_maker(SLEEPY), SLEEPY, backend=backend, **kwargs)


def specs(*names, horizon=6):
    return [EpisodeSpec(f"test-{n}", horizon, sample=i) for i, n in enumerate(names)]


@pytest.mark.parametrize(
    ("env_id", "kwargs", "respond", "options"),
    [
        (GUESS, {}, bisect, RolloutOptions(max_new_tokens=32)),
        (
            KV,
            KV_KWARGS,
            kv_agent,
            RolloutOptions(64, 700, context="summarize", context_config=SummarizeConfig(max_summaries=10)),
        ),
    ],
    ids=["guess-full", "kvsum-summarize"],
)
def test_ray_and_local_backends_build_identical_trajectories(
    ray_session, smol_tokenizer, env_id, kwargs, respond, options
):
    tasks = gymnasium.make(env_id, **kwargs).unwrapped.tasks("test")[:6]
    run_specs = [EpisodeSpec(t.id, 8, sample=s, seed=17 * i + s) for i, t in enumerate(tasks) for s in range(2)]
    policy = ScriptedPolicy(smol_tokenizer, respond)
    results = {}
    for backend in ("local", "ray"):
        with RolloutPool(env_maker(env_id, **kwargs), env_id, backend=backend, num_workers=3, max_concurrent=5) as p:
            results[backend] = p.run(policy, run_specs, SamplingParams(options.max_new_tokens), options)
    assert [t.to_dict() for t in results["ray"]] == [t.to_dict() for t in results["local"]]
    assert all(t.end_reason != "aborted" for t in results["ray"])


def test_a_worker_killed_with_sigkill_aborts_its_episodes_and_the_run_goes_on(ray_session, smol_tokenizer):
    calls = []

    class Killer(ScriptedPolicy):
        def generate(self, prompts, params, messages=None):
            calls.append(len(prompts))
            if len(calls) == 3:  # in the middle of the rollout
                os.kill(victim, signal.SIGKILL)
            return super().generate(prompts, params, messages)

    with pool(envs_per_worker=2, max_concurrent=4) as p:
        victim = ray.get(p.workers.hosts[0].ping.remote())
        stats = RolloutStats()
        trajs = p.run(Killer(smol_tokenizer, say()), specs(*["nap"] * 10), SamplingParams(8), stats=stats)
        assert ray.get(p.workers.hosts[0].ping.remote()) != victim  # a fresh worker replaced it
    aborted = [t for t in trajs if t.end_reason == "aborted"]
    assert 1 <= len(aborted) <= 2  # the episodes that lived on the killed worker
    assert all("env worker 0 was lost" in t.error and t.reward == 0.0 for t in aborted)
    assert sum(t.success for t in trajs) == 10 - len(aborted)  # later episodes ran on the new worker
    metrics = rollout_metrics(trajs, stats)
    assert metrics["worker_restarts"] == 1 and metrics["aborted"] == len(aborted)
    assert metrics["aborted_rate"] == pytest.approx(len(aborted) / 10) and metrics["failure_rate"] == 0


def test_a_step_past_its_timeout_is_aborted_and_its_worker_replaced(ray_session, smol_tokenizer):
    start = time.perf_counter()
    with pool(envs_per_worker=1, step_timeout_s=1.0, max_concurrent=2) as p:
        trajs = p.run(ScriptedPolicy(smol_tokenizer, say()), specs("hang", "fast", "fast", "fast"), SamplingParams(8))
    assert time.perf_counter() - start < 20  # nobody waited for the 60 s step
    assert trajs[0].end_reason == "aborted" and "StepTimeout" in trajs[0].error
    assert [t.end_reason for t in trajs[1:]] == ["success"] * 3


def test_local_backend_aborts_a_step_that_ran_past_its_timeout(smol_tokenizer):
    with pool("local", step_timeout_s=0.1) as p:
        trajs = p.run(ScriptedPolicy(smol_tokenizer, say()), specs("nap", "fast"), SamplingParams(8))
    assert trajs[0].end_reason == "aborted" and "past step_timeout_s=0.1" in trajs[0].error
    assert trajs[1].end_reason == "success"


def test_an_env_exception_in_a_worker_aborts_only_its_episode(ray_session, smol_tokenizer):
    stats = RolloutStats()
    with pool(envs_per_worker=2) as p:
        trajs = p.run(
            ScriptedPolicy(smol_tokenizer, say()), specs("crash", "fast", "fast"), SamplingParams(8), stats=stats
        )
    assert trajs[0].end_reason == "aborted" and "RuntimeError: env crashed at turn 2" in trajs[0].error
    assert trajs[0].turns == 1 and [t.end_reason for t in trajs[1:]] == ["success", "success"]
    assert stats.worker_restarts == 0  # the worker caught it: no restart needed


def test_a_slow_env_step_does_not_stall_episodes_that_are_ready(ray_session, smol_tokenizer):
    log = []

    def respond(msgs):
        log.append(msgs[1]["content"].split(".")[0])  # "Task test-slow" or "Task test-fast"
        return "ok"

    # One env per worker: envs that share a worker share its one thread, and so its waits.
    with pool(num_workers=3, envs_per_worker=1) as p:
        p.run(ScriptedPolicy(smol_tokenizer, respond), specs("slow", "fast", "fast"), SamplingParams(8))
    # The slow episode's first step takes 1.5 s; both fast episodes (5 turns each) finish meanwhile.
    second_slow = [i for i, who in enumerate(log) if who == "Task test-slow"][1]
    last_fast = max(i for i, who in enumerate(log) if who == "Task test-fast")
    assert log.count("Task test-fast") == 10 and last_fast < second_slow


def test_metrics_are_written_beside_the_trajectories(ray_session, smol_tokenizer, tmp_path):
    stats = RolloutStats()
    with pool() as p:
        trajs = p.run(
            ScriptedPolicy(smol_tokenizer, say()), specs("nap", "fast", "crash"), SamplingParams(8), stats=stats
        )
    metrics = rollout_metrics(trajs, stats)
    assert metrics["episodes"] == 3 and metrics["aborted_rate"] == pytest.approx(1 / 3)
    assert metrics["env_step_ms_p95"] >= 250 and metrics["env_step_ms_p50"] < metrics["env_step_ms_p95"]
    assert metrics["context_tokens_p50"] > 0 and metrics["episodes_per_s"] > 0
    out = write_rollout(tmp_path, trajs, metrics)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 3


def test_agentgym_eval_runs_on_the_ray_pool_with_the_same_results(ray_session, smol_tokenizer, tmp_path):
    from agentgym.config import EvalConfig, load_config
    from agentgym.eval import evaluate

    common = ["env.num_tasks=6", "samples_per_task=2", "horizons=[2,4]", "progress=false"]
    policy = ScriptedPolicy(smol_tokenizer, bisect)
    local = evaluate(load_config(None, EvalConfig, [f"output_dir={tmp_path / 'a'}", *common]), policy)
    remote = evaluate(
        load_config(
            None, EvalConfig, [f"output_dir={tmp_path / 'b'}", "rollout.backend=ray", "rollout.num_workers=2", *common]
        ),
        policy,
    )
    assert json.dumps(remote.rows) == json.dumps(local.rows)  # NaN-safe comparison
    assert [t.to_dict() for t in remote.trajectories] == [t.to_dict() for t in local.trajectories]


def test_a_local_ray_listens_on_loopback_only(ray_session, smol_tokenizer):
    """Every server of the local Ray (GCS, raylet, agents, the env actors) binds 127.0.0.1:
    Ray's default is the machine's address on all interfaces."""
    import psutil

    with RolloutPool(env_maker(GUESS), GUESS, backend="ray", num_workers=2) as pool:
        pool.run(ScriptedPolicy(smol_tokenizer, bisect), [EpisodeSpec("guess16-test-0000", 4)], SamplingParams(16))
        listening = set()
        for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
            try:
                listening |= {(proc.name(), c.laddr.ip) for c in proc.net_connections("inet") if c.status == "LISTEN"}
            except psutil.Error:
                continue
    assert {"gcs_server", "raylet"} <= {name for name, _ in listening}
    assert {ip for _, ip in listening} <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, sorted(listening)


def test_the_local_backend_abandons_a_hung_step_and_only_its_episode_is_aborted(smol_tokenizer):
    start = time.perf_counter()
    with pool("local", step_timeout_s=1.0, max_concurrent=4, num_workers=4) as p:  # a thread per env
        trajs = p.run(ScriptedPolicy(smol_tokenizer, say()), specs("hang", "fast", "fast", "fast"), SamplingParams(8))
        # The slot of the hung env has a fresh host: the pool goes on serving episodes.
        again = p.run(ScriptedPolicy(smol_tokenizer, say()), specs("fast", "fast", "fast", "fast"), SamplingParams(8))
    assert time.perf_counter() - start < 20  # nobody waited for the 60 s step
    assert trajs[0].end_reason == "aborted" and "StepTimeout" in trajs[0].error
    assert [t.end_reason for t in trajs[1:]] == ["success"] * 3
    assert [t.end_reason for t in again] == ["success"] * 4


def test_evaluation_and_training_have_a_step_timeout_by_default():
    from agentgym.trainers.config import TrainConfig

    from agentgym.config import EvalConfig

    assert EvalConfig().rollout.step_timeout_s == TrainConfig().rollout.step_timeout_s == 300.0


def test_threaded_local_envs_give_the_same_sampled_trajectories_as_in_thread_ones(smol_tokenizer):
    """A round's env calls all finish before the next generation on either, so the batches,
    and with them the sampled tokens, are the same."""
    import torch

    from agentgym.policy import HFPolicy, load_model

    model, tok = load_model("tiny-random")
    runs = []
    for timeout in (None, 30.0):
        torch.manual_seed(0)
        with RolloutPool(env_maker(GUESS), GUESS, step_timeout_s=timeout, max_concurrent=4) as p:
            specs_ = [EpisodeSpec(f"guess16-test-000{i}", 3, sample=i) for i in range(6)]
            runs.append(p.run(HFPolicy(model, tok), specs_, SamplingParams(6, temperature=1.0)))
    assert runs[0] == runs[1]
