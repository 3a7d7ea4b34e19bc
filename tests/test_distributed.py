"""Data-parallel training on the CPU (gloo): the update of two ranks is the single-process
update on the union of their rollouts; `accelerate launch` runs `agentgym train` end to end."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from agentgym.trainers import build_trainer
from agentgym.trainers.distributed import Dist

from agentgym.config import ConfigError
from agentgym.trajectory import Segment, Trajectory
from tests.test_train_support import one_torch_thread, tiny_config  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parent.parent
WORLD = 2
GROUP = 4  # tiny_config's samples_per_task
GROUPS = 4

#: Update settings checked for exactness, by name: overrides of `tiny_config`.
VARIANTS = {
    "grpo": ["algo=grpo"],
    # LoRA (reference = the initial adapter), KL, Dr. GRPO's constant norm, recomputed old log-probs, two steps.
    "grpo_lora_kl": [
        "algo=grpo",
        "lora.enabled=true",
        "lora.r=4",
        "grpo.kl_coef=0.1",
        "grpo.loss_norm=constant",
        "optim.ppo_epochs=2",
    ],
    "ppo": ["algo=ppo"],  # value head, batch-wide advantage whitening, value loss
    # FSDP2: weights, gradients and AdamW state sharded over the ranks (one process: unsharded).
    "grpo_fsdp": ["algo=grpo", "hardware.fsdp=true"],
    # One row a micro-batch: the ranks' counts differ, and the short one runs padding passes.
    "grpo_fsdp_kl": [
        "algo=grpo",
        "hardware.fsdp=true",
        "grpo.kl_coef=0.1",
        "optim.ppo_epochs=2",
        "optim.micro_batch=1",
    ],
    "ppo_fsdp": ["algo=ppo", "hardware.fsdp=true"],
}


def scripted_batch() -> list[Trajectory]:
    """GROUPS groups of GROUP rollouts of random tokens: 1-2 segments of 1-3 turns (generated
    tokens, then env tokens), mixed rewards, an over-turn and an aborted rollout among them."""
    rng = random.Random(0)
    trajs = []
    for k in range(GROUPS * GROUP):
        segments, turn_rewards = [], []
        for _ in range(rng.randint(1, 2)):
            seg = Segment(prompt_ids=[rng.randrange(10, 2000) for _ in range(rng.randint(3, 8))])
            for _ in range(rng.randint(1, 3)):
                n = rng.randint(2, 5)
                seg.reply([rng.randrange(10, 2000) for _ in range(n)], logprobs=[-1.0] * n).turn = len(turn_rewards)
                seg.extend([rng.randrange(10, 2000) for _ in range(rng.randint(2, 4))], generated=False)
                turn_rewards.append(rng.choice([0.0, 0.0, 0.5, 1.0]))
            segments.append(seg)
        reward = sum(turn_rewards)
        end = {5: "over_turn", 10: "aborted"}.get(k, "success" if reward >= 1 else "failure")
        trajs.append(
            Trajectory(
                "agentgym/TestCoin-v0",
                f"train-{k // GROUP}",
                sample=k % GROUP,
                segments=segments,
                reward=reward,
                turn_rewards=turn_rewards,
                turns=len(turn_rewards),
                success=end == "success",
                end_reason=end,
            )
        )
    return trajs


def share(trajs: list[Trajectory], rank: int, world: int) -> list[Trajectory]:
    """Rank `rank`'s groups, as `Trainer.collect` splits a step: picks[rank::world]."""
    groups = [trajs[i : i + GROUP] for i in range(0, len(trajs), GROUP)]
    return [t for g in groups[rank::world] for t in g]


def one_update(
    out: Path, overrides: list[str], trajs: list[Trajectory], sgd: bool = True
) -> tuple[dict[str, torch.Tensor], dict]:
    """The trainable weights (value head included) and the statistics after one `update`.

    With `sgd`, plain SGD at lr 1 replaces AdamW, so that the change of the weights is the
    (clipped) summed gradient itself: AdamW's first step, lr * g / (|g| + eps), turns the
    float noise of a different summation order into changes of up to lr / eps * noise where
    g is near 0 (a handful of the 3M elements move by 1e-5 instead of 1e-6).
    """
    trainer = build_trainer(tiny_config(out, f"tasks_per_step={GROUPS}", *overrides))
    if sgd:
        trainer.optimizer = torch.optim.SGD(trainer.params, lr=1.0)
        trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda _: 1.0)
    metrics = trainer.update(trajs, 2)
    # Sharded weights are gathered whole (every rank calls full_tensor: a collective).
    weights = {n: _whole(p) for n, p in trainer.model.named_parameters() if p.requires_grad}
    for name, module in trainer.modules.items():
        weights.update({f"{name}.{n}": p.detach().clone() for n, p in module.named_parameters()})
    return weights, metrics


def _whole(p: torch.Tensor) -> torch.Tensor:
    return (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: Path) -> None:
    """One rank of `torch.multiprocessing.spawn`: the environment a launcher would set, then
    every variant's update on this rank's share; results to out/rank-R.pt."""
    os.environ.update(
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    mine = share(scripted_batch(), rank, world)
    results: dict[str, Any] = {}
    for name, overrides in VARIANTS.items():
        results[name] = one_update(out / f"{name}-{rank}", overrides, mine)
    results["adamw"] = one_update(out / f"adamw-{rank}", VARIANTS["grpo"], mine, sgd=False)
    sharded = build_trainer(tiny_config(out / f"fsdp-{rank}", f"tasks_per_step={GROUPS}", "hardware.fsdp=true"))
    _, rows, _ = sharded.advantages(mine, [i // GROUP for i in range(len(mine))])
    sharded.cfg.optim.micro_batch = 1
    results["fsdp"] = {
        "dtensors": all(hasattr(p, "full_tensor") for p in sharded.model.parameters()),
        "local": sum(p.to_local().numel() for p in sharded.model.parameters()),
        "whole": sum(p.numel() for p in sharded.model.parameters()),
        "micro_batches": len(rows),  # one row each
        "padded": len(sharded.micro_batches(rows)),
    }
    trainer = build_trainer(tiny_config(out / f"gather-{rank}", f"tasks_per_step={GROUPS}"))
    results["gathered"] = [(t.task_id, t.sample) for t in trainer.gather(mine)]
    results["nothing_stops"] = trainer.stop_agreed()
    if rank == 1:
        trainer.stop("SIGTERM")  # a signal that reached this rank alone
    results["stopped_by"] = trainer.stop_agreed()
    try:
        build_trainer(tiny_config(out / f"odd-{rank}", "tasks_per_step=3"))
    except ConfigError as exc:
        results["odd_error"] = str(exc)
    torch.save(results, out / f"rank-{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank, args=(WORLD, free_port(), out), nprocs=WORLD)
    return [torch.load(out / f"rank-{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("single")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: one_update(out / name, overrides, scripted_batch()) for name, overrides in VARIANTS.items()}
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_update_on_two_ranks_equals_the_single_process_update_on_their_union(ranks, single, variant):
    weights, _ = single[variant]
    for rank in ranks:
        got, _ = rank[variant]
        assert got.keys() == weights.keys()
        for name, w in weights.items():
            torch.testing.assert_close(got[name], w, rtol=0, atol=1e-6, msg=f"{variant}: {name}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_update_statistics_are_the_whole_batchs_on_every_rank(ranks, single, variant):
    _, expected = single[variant]
    for rank in ranks:
        _, got = rank[variant]
        assert got.keys() == expected.keys()
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert expected["grad_norm"] > 0, "the batch must produce a gradient"


@pytest.mark.parametrize("variant", [*VARIANTS, "adamw"])
def test_ranks_hold_bit_identical_weights_after_an_update(ranks, variant):
    (a, _), (b, _) = ranks[0][variant], ranks[1][variant]
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_fsdp_shards_the_weights_and_gives_every_rank_as_many_passes_as_the_busiest(ranks):
    """hardware.fsdp=true: each rank holds about half of every weight (DTensor shards); the
    rank with fewer micro-batches runs zero-weight padding passes up to the other's count
    (a forward is a collective there: unequal counts hang, as the FSDP probe showed)."""
    fsdp = [rank["fsdp"] for rank in ranks]
    assert all(f["dtensors"] for f in fsdp)
    assert all(f["local"] < 0.6 * f["whole"] for f in fsdp)
    counts = [f["micro_batches"] for f in fsdp]
    assert counts[0] != counts[1], "the batch must give the ranks unequal numbers of micro-batches"
    assert [f["padded"] for f in fsdp] == [max(counts)] * 2


def test_gathered_rollouts_come_back_in_single_process_order(ranks):
    expected = [(t.task_id, t.sample) for t in scripted_batch()]
    assert all(rank["gathered"] == expected for rank in ranks)


def test_a_stop_on_one_rank_stops_every_rank_after_the_same_step(ranks):
    assert [rank["nothing_stops"] for rank in ranks] == [None, None]
    assert [rank["stopped_by"] for rank in ranks] == ["SIGTERM", "SIGTERM"]


def test_tasks_per_step_must_split_evenly_over_the_ranks(ranks):
    assert all("tasks_per_step=3" in rank["odd_error"] for rank in ranks)


def test_single_process_initialises_nothing_and_collectives_are_identities(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist = Dist.from_env()
    assert (dist.world, dist.rank, dist.is_main, dist.device) == (1, 0, True, None)
    assert not torch.distributed.is_initialized()
    assert dist.sum([1, 2.5]) == [1.0, 2.5] and dist.all_gather_object({"a": 1}) == [{"a": 1}]


def test_rank_zero_keeps_the_seed_and_other_ranks_get_distinct_reproducible_ones():
    seeds = [Dist(world=4, rank=r).seed(1234) for r in range(4)]
    assert seeds[0] == 1234 and len(set(seeds)) == 4
    assert seeds == [Dist(world=4, rank=r).seed(1234) for r in range(4)]


def _launch(out: Path, *settings: str, env_extra: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """`accelerate launch` of `agentgym train` on the tiny model, two CPU processes; the
    metrics log's records (time fields dropped) and stderr."""
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(WORLD),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", "agentgym.cli", "train",
        str(ROOT / "configs" / "quickstart.yaml"), "policy.model=tiny-random", *settings,
        "tensorboard=false", "progress=false", f"output_dir={out}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", **(env_extra or {}))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows], proc.stderr


def test_sharded_training_with_a_warm_start_and_kl_resumes_exactly_and_saves_whole_weights(tmp_path):
    """FSDP2 end to end on two CPU processes: the warm start on every rank, a sharded bf16-free
    KL reference captured after it, evaluations on the main rank from the gathered copy,
    checkpoints of whole weights, and a resumed run that matches the uninterrupted one.
    One run turns FSDP on as accelerate's FSDP config does (ACCELERATE_USE_FSDP=true)."""
    settings = [
        "lora.enabled=false", "optim.lr=0.001", "optim.schedule=constant", "grpo.kl_coef=0.05",
        "warm_start.episodes=16", "warm_start.epochs=1", "tasks_per_step=2", "samples_per_task=4",
        "eval.at_start=false", "eval.horizons=[1]", "eval.num_tasks=2", "eval.samples_per_task=1",
        "checkpoint_every=2", "save_final=true",
    ]  # fmt: skip
    whole, err = _launch(tmp_path / "a", *settings, "steps=3", "hardware.fsdp=true")
    part, err_env = _launch(tmp_path / "b", *settings, "steps=2", env_extra={"ACCELERATE_USE_FSDP": "true"})
    resumed, _ = _launch(tmp_path / "b", *settings, "steps=3", "hardware.fsdp=true", "resume=true")
    line = "agentgym: FSDP2: the weights, gradients and AdamW state are sharded over 2 processes"
    assert line in err and line in err_env
    steps = [r for r in whole if "horizon" in r]
    assert [r["step"] for r in steps] == [0, 1, 2] and sum(r["grad_norm"] > 0 for r in steps) >= 2
    assert [r for r in resumed if "horizon" in r] == steps
    assert part[0]["warm_start"] and part[0] == whole[0]  # the warm start: the same loss before and after
    assert [r for r in whole if r.get("eval_at") == "end"] and [r for r in part if r.get("eval_at") == "end"]
    weights = torch.load(tmp_path / "a" / "checkpoints" / "step-000003" / "model.pt", weights_only=True)
    final = torch.load(tmp_path / "a" / "checkpoints" / "reference.pt", weights_only=True)
    from agentgym.policy.models import load_model

    model, _ = load_model(str(tmp_path / "a" / "final"), dtype="float32", device="cpu")
    for name, p in model.named_parameters():
        assert weights[name].shape == p.shape  # whole tensors, not one rank's shard
        assert torch.equal(weights[name], p.detach())  # the final model: the last step's weights
        assert final[name].shape == p.shape


@pytest.mark.parametrize("async_steps", [0, 1])
def test_accelerate_launch_trains_on_two_cpu_processes(tmp_path, async_steps):
    """`accelerate launch` on the CPU needs --multi_gpu (its multi-process launcher; our
    ranks then open a gloo group): without it accelerate starts a single process. With
    async_steps=1 each rank collects its next share in a thread during the update."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(WORLD),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "agentgym.cli",
        "train",
        str(ROOT / "configs" / "quickstart.yaml"),
        "policy.model=tiny-random",
        "steps=2",
        "warm_start.episodes=16",  # a tiny warm start: the main rank clones, the others receive
        "warm_start.epochs=1",
        "eval.at_start=false",
        "eval.horizons=[1]",
        "eval.num_tasks=2",
        "eval.samples_per_task=1",
        "tensorboard=false",
        "progress=false",
        "save_final=false",
        f"async_steps={async_steps}",
        f"output_dir={out}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "horizon" in r]
    assert steps == [0, 1]  # one line per step: only the main rank writes
    assert sum(r.get("warm_start", False) for r in records) == 1
    assert sum("eval_at" in r for r in records) == 1
    assert (out / "checkpoints" / "step-000002" / "state.json").exists()
    if async_steps:
        assert [r["policy_staleness"] for r in records if "horizon" in r] == [0.0, 1.0]
