"""The weights rollouts read (trainers/sampler.py) and asynchronous rollouts (`async_steps: 1`):
step k+1's rollouts run while step k's update does, sampled by the weights of before it."""

import json
import math
from pathlib import Path

import pytest
import torch
from agentgym.trainers import build_trainer
from agentgym.trainers.common import micro_batches, pad_rows, rows_from_trajectories, token_logprobs
from agentgym.trainers.config import load_train_config
from agentgym.trainers.sampler import Sampler

from agentgym.cli import main
from agentgym.config import ConfigError
from agentgym.trajectory import load_trajectories, save_trajectories
from tests.test_train_support import signal_during_step, tiny_config

DATA = Path(__file__).resolve().parent / "data"


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_async_steps_0_gives_the_figures_of_the_loop_before_asynchronous_rollouts_existed(tmp_path):
    """tests/data/sync_loop_metrics.json: these two runs' metrics, written by the trainer as
    it was before the sampler and async_steps (commit 3de8326, /tmp/golden/gen.py in the
    closing note of issue 20): GRPO with a KL term (full fine-tuning), and PPO with LoRA."""
    golden = json.loads((DATA / "sync_loop_metrics.json").read_text())
    runs = {
        "grpo_kl": ["steps=3", "grpo.kl_coef=0.05"],
        "ppo_lora": ["steps=3", "algo=ppo", "lora.enabled=true", "lora.r=4"],
    }
    for name, settings in runs.items():
        trainer = build_trainer(tiny_config(tmp_path / name, *settings, "async_steps=0"))
        assert trainer.sampler.model is trainer.model  # on the CPU, rollouts read the trained weights: no copy
        trainer.train()
        assert _close(_metrics(tmp_path / name), golden[name]), name


class Recorder:
    """Wraps a trainer's `update` to keep, per step, the batch, its policy versions, the
    behaviour log-probs the update was given, and the weights before the update."""

    def __init__(self, trainer):
        self.trainer, self.steps = trainer, []
        update = trainer.update

        def recording(trajs, horizon):
            before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            self.steps.append(
                {
                    "versions": [t.policy_version for t in trajs],
                    "behaviour": trainer.behaviour,
                    "weights": before,
                    "trajs": trajs,
                }
            )
            return update(trajs, horizon)

        trainer.update = recording


def _logprobs_under(trainer, weights, trajs):
    """Each trajectory's per-segment log-probs under `weights`, by the training forward."""
    model = trainer.model
    now = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(weights)
    model.eval()
    out = [[None] * len(t.segments) for t in trajs]
    with torch.no_grad():
        for mb in micro_batches(rows_from_trajectories(trajs), 4):
            logp = token_logprobs(model, pad_rows(mb, trainer.pad_id), trainer.cfg.sampling.temperature)
            for i, r in enumerate(mb):
                out[r.traj_index][r.segment] = logp[i, : len(r.input_ids)].tolist()
    model.load_state_dict(now)
    return out


def test_async_rollouts_are_sampled_one_version_stale_and_the_ratio_compares_with_the_weights_that_sampled(tmp_path):
    trainer = build_trainer(tiny_config(tmp_path, "steps=4", "async_steps=1", "optim.lr=0.05"))
    assert trainer.sampler.model is not trainer.model  # a copy: it generates while the update changes the model
    rec = Recorder(trainer)
    trainer.train()
    # Step 0's rollouts: the initial weights (nothing to overlap); step k's: the weights after k - 1 updates.
    assert [set(s["versions"]) for s in rec.steps] == [{0}, {0}, {1}, {2}]
    assert [r["policy_staleness"] for r in _metrics(tmp_path)] == [0.0, 1.0, 1.0, 1.0]
    for k, s in enumerate(rec.steps):
        sampled_by = rec.steps[max(k - 1, 0)]["weights"]  # weights before update k - 1 = after k - 1 updates
        expected = _logprobs_under(trainer, sampled_by, s["trajs"])
        got = s["behaviour"]
        for e_traj, g_traj in zip(expected, got, strict=True):
            for e, g in zip(e_traj, g_traj, strict=True):
                assert torch.allclose(torch.tensor(g), torch.tensor(e), atol=1e-5)
        if k >= 1:  # the update's own weights differ from those: the batch really is one version old
            now = _logprobs_under(trainer, s["weights"], s["trajs"])
            gaps = [
                abs(a - b)
                for x, y in zip(now, expected, strict=True)
                for u, v in zip(x, y, strict=True)
                for a, b in zip(u, v, strict=True)
            ]
            assert max(gaps) > 1e-3
    ratios = [r["ratio_mean"] for r in _metrics(tmp_path)]
    assert ratios[0] == pytest.approx(1.0) and any(abs(r - 1.0) > 1e-4 for r in ratios[1:])
    # The sampler ends holding the final weights, and the version that says so.
    assert trainer.sampler.version == 4
    for p, q in zip(trainer.model.parameters(), trainer.sampler.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_an_async_run_stopped_mid_update_resumes_to_the_uninterrupted_run(tmp_path):
    """The checkpoint holds the next step's rollouts (pending.pt), collected by the weights of
    before the last update: the resumed run trains on them, as the uninterrupted one did."""
    settings = ["steps=4", "async_steps=1", "checkpoint_every=0", "eval.every=2", "eval.horizons=[1,2]",
                "eval.num_tasks=2", "eval.samples_per_task=1", "curriculum.kind=adaptive", "curriculum.rounds=[1,2]",
                "curriculum.success_above=0.3", "curriculum.window=1"]  # fmt: skip
    build_trainer(tiny_config(tmp_path / "a", *settings)).train()
    assert signal_during_step(build_trainer(tiny_config(tmp_path / "b", *settings)), step=1).train()["stopped"]
    assert (tmp_path / "b" / "checkpoints" / "step-000002" / "pending.pt").exists()
    build_trainer(tiny_config(tmp_path / "b", *settings, "resume=true")).train()
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [r["step"] for r in b if "eval_at" not in r] == [0, 1, 2, 3]
    assert a == b
    assert sum(r.get("grad_norm", 0) > 0 for r in a) >= 2, "the run must actually train"


def test_rollouts_can_generate_from_a_bf16_copy_synced_after_every_update(tmp_path):
    """policy.rollout_dtype=bfloat16 (what `auto` picks on a GPU): rollouts read a bf16 copy
    that equals the trained weights, cast, after each update; they record its version."""
    trainer = build_trainer(tiny_config(tmp_path, "steps=2", "policy.rollout_dtype=bfloat16", "save_final=true"))
    assert trainer.sampler.model.dtype == torch.bfloat16 and trainer.model.dtype == torch.float32
    trainer.train()
    assert trainer.sampler.version == 2
    for p, q in zip(trainer.model.parameters(), trainer.sampler.model.parameters(), strict=True):
        assert torch.equal(p.detach().to(torch.bfloat16), q)
    (traj, *_) = load_trajectories(tmp_path / "rollouts" / "step-000000.jsonl")
    assert traj.policy_version == 0 and traj.schema_version == 4
    # The recorded log-probs are the bf16 copy's (the distribution sampled from), not fp32's.
    assert any(lp < 0 for seg in traj.segments for lp in seg.logprobs)


def test_trajectories_keep_their_policy_version_through_jsonl_and_parquet(tmp_path):
    trainer = build_trainer(tiny_config(tmp_path / "run", "steps=1"))
    trajs, _ = trainer.collect(0, 2)
    trainer.close()
    trajs[0].policy_version = 7
    for name in ("t.jsonl", "t.parquet"):
        save_trajectories(trajs, tmp_path / name)
        back = load_trajectories(tmp_path / name)
        assert [t.policy_version for t in back] == [7] + [0] * (len(trajs) - 1)
    bad = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0]) | {"policy_version": -1}
    (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match="policy_version must be a whole number >= 0"):
        load_trajectories(tmp_path / "bad.jsonl")


def test_a_sampler_copies_only_what_training_changes_and_syncs_in_its_own_dtype():
    from agentgym.policy.models import load_model

    model, _ = load_model("tiny-random", dtype="float32", device="cpu")
    shared = Sampler(model)
    assert shared.model is model and not shared.copied
    half = Sampler(model, torch.bfloat16)
    assert half.model.dtype == torch.bfloat16
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not torch.equal(next(half.model.parameters()), next(model.parameters()).to(torch.bfloat16))
    half.sync(3)
    assert half.version == 3 and torch.equal(next(half.model.parameters()), next(model.parameters()).to(torch.bfloat16))
    assert not any(p.requires_grad for p in half.model.parameters())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("async_steps=2", "async_steps must be 0 (rollouts, then the update) or 1"),
        ("policy.backend=vllm", "async_steps=1 needs policy.backend=hf"),
    ],
)
def test_async_settings_it_cannot_honour_are_refused_naming_the_key(override, message, capsys):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_train_config(
            "configs/quickstart.yaml", ["async_steps=1", override] if "backend" in override else [override]
        )
    assert (
        main(["train", "configs/quickstart.yaml", override, "async_steps=1" if "backend" in override else "steps=1"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize("algo", ["ppo", "gigpo"])
def test_ppo_and_gigpo_compare_with_the_weights_that_sampled_under_async_steps(tmp_path, algo):
    """PPO recomputes its old log-probs itself, and GiGPO extends GRPO: under async_steps=1
    both take the behaviour log-probs, so from step 1 on the ratio is not 1 at the first pass."""
    trainer = build_trainer(tiny_config(tmp_path, "steps=3", "async_steps=1", "optim.lr=0.05", f"algo={algo}"))
    rec = Recorder(trainer)
    trainer.train()
    assert all(s["behaviour"] is not None for s in rec.steps)
    rows = _metrics(tmp_path)
    assert [r["policy_staleness"] for r in rows] == [0.0, 1.0, 1.0]
    assert rows[0]["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert any(abs(r["ratio_mean"] - 1.0) > 1e-4 for r in rows[1:])
