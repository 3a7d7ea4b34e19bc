"""GRPO: group advantages (GRPO, Dr. GRPO, DAPO), masks, the clipped loss, KL k3, one update."""

import math

import pytest
import torch
from agentgym.trainers.common import rows_from_trajectories
from agentgym.trainers.grpo import (
    GRPOConfig,
    GRPOTrainer,
    clipped_token_loss,
    group_advantages,
    grpo_loss,
    kl_k3,
)

from tests.test_train_support import one_torch_thread, tiny_config  # noqa: F401 (autouse fixture)

OK = "success"


def test_advantage_is_reward_minus_group_mean_over_sample_std():
    adv, trained, _ = group_advantages([1, 0, 0, 1, 2, 0], [0, 0, 0, 0, 1, 1], [OK] * 6, GRPOConfig(eps=0.0))
    s = math.sqrt(1 / 3)  # sample std of [1, 0, 0, 1]
    assert adv[:4] == pytest.approx([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s])
    assert adv[4:] == pytest.approx([1 / math.sqrt(2), -1 / math.sqrt(2)])  # [2, 0]: mean 1, std sqrt(2)
    assert all(trained)


def test_dr_grpo_does_not_divide_by_std():
    adv, _, _ = group_advantages([1, 0, 0, 1], [0] * 4, [OK] * 4, GRPOConfig(advantage_std=False))
    assert adv == pytest.approx([0.5, -0.5, -0.5, 0.5])


def test_dapo_drops_groups_whose_rewards_are_all_equal():
    cfg = GRPOConfig(drop_equal_groups=True)
    adv, trained, info = group_advantages([1, 1, 1, 0, 1, 0], [0, 0, 0, 1, 1, 1], [OK] * 6, cfg)
    assert adv[:3] == [0.0, 0.0, 0.0] and trained[:3] == [False] * 3
    assert trained[3:] == [True] * 3 and info["groups_dropped"] == 1.0
    # Without the switch, an all-equal group is trained with zero advantage.
    adv, trained, _ = group_advantages([1, 1, 1], [0] * 3, [OK] * 3, GRPOConfig())
    assert adv == [0.0, 0.0, 0.0] and all(trained)


def test_over_turn_rollout_counts_with_reward_zero_but_is_not_trained():
    reasons = ["success", "over_turn", "failure", "failure"]
    adv, trained, info = group_advantages([1, 0.5, 0, 0], [0] * 4, reasons, GRPOConfig(eps=0.0))
    # Stats over [1, 0, 0, 0]: mean 0.25, sample std 0.5.
    assert adv == pytest.approx([1.5, -0.5, -0.5, -0.5])
    assert trained == [True, False, True, True] and info["rollouts_masked"] == 1.0
    adv, trained, _ = group_advantages([1, 0.5, 0, 0], [0] * 4, reasons, GRPOConfig(mask_over_turn=False))
    assert trained == [True] * 4 and adv[1] > adv[2]  # its own 0.5 reward now counts


def test_overlong_masking_is_a_switch():
    reasons = ["success", "overlong"]
    _, trained, _ = group_advantages([1, 0], [0, 0], reasons, GRPOConfig())
    assert trained == [True, False]
    _, trained, _ = group_advantages([1, 0], [0, 0], reasons, GRPOConfig(mask_overlong=False))
    assert trained == [True, True]


def test_aborted_rollouts_stay_out_of_group_statistics_and_loss():
    reasons = ["success", "failure", "aborted"]
    adv, trained, _ = group_advantages([1, 0, 0], [0] * 3, reasons, GRPOConfig(eps=0.0))
    assert adv == pytest.approx([1 / math.sqrt(2), -1 / math.sqrt(2), 0.0])  # stats over [1, 0] only
    assert trained == [True, True, False]


def test_clipped_loss_matches_a_hand_computation():
    logp = torch.log(torch.tensor([[0.5, 0.9, 0.1]]))
    old = torch.log(torch.tensor([[0.25, 1.0, 0.2]]))  # ratios 2.0, 0.9, 0.5
    loss, ratio = clipped_token_loss(logp, old, torch.tensor([1.0]), eps_low=0.2, eps_high=0.28)
    assert ratio[0].tolist() == pytest.approx([2.0, 0.9, 0.5])
    # A > 0: -min(rho, clip(rho, 0.8, 1.28)) = -[1.28, 0.9, 0.5]
    assert loss[0].tolist() == pytest.approx([-1.28, -0.9, -0.5])
    loss, _ = clipped_token_loss(logp, old, torch.tensor([-1.0]), eps_low=0.2, eps_high=0.28)
    # A < 0: -min(-rho, -clip(rho)) = max(rho, clip(rho)) = [2.0, 0.9, 0.8]
    assert loss[0].tolist() == pytest.approx([2.0, 0.9, 0.8])


def test_grpo_loss_is_the_masked_clipped_surrogate_plus_beta_k3_over_the_normaliser():
    logp = torch.log(torch.tensor([[0.5, 0.9, 0.1]]))
    old = torch.log(torch.tensor([[0.25, 1.0, 0.2]]))  # ratios 2.0, 0.9, 0.5
    ref = torch.log(torch.tensor([[0.5, 0.45, 0.1]]))  # k3: 0, 0.5 - ln 0.5 - 1, 0
    mask = torch.tensor([[0.0, 1.0, 1.0]])  # the first position is not a generated token
    g = GRPOConfig(kl_coef=0.1)
    loss, stats = grpo_loss(logp, old, torch.tensor([1.0]), mask, 4.0, g, ref)
    k3 = 0.5 - math.log(0.5) - 1
    assert float(loss) == pytest.approx((-0.9 + 0.1 * k3 - 0.5) / 4.0)
    assert float(stats["kl"]) == pytest.approx(k3) and float(stats["tokens"]) == 2
    assert float(stats["clip_frac"]) == 1.0 and float(stats["ratio_mean"]) == pytest.approx(1.4)  # 0.5 < 0.8
    no_kl, _ = grpo_loss(logp, old, torch.tensor([1.0]), mask, 4.0, GRPOConfig(), None)
    assert float(no_kl) == pytest.approx((-0.9 - 0.5) / 4.0)


def test_kl_k3_formula():
    logp = torch.log(torch.tensor([0.5, 0.3]))
    ref = torch.log(torch.tensor([0.25, 0.3]))
    r = 0.25 / 0.5
    assert kl_k3(logp, ref).tolist() == pytest.approx([r - math.log(r) - 1, 0.0], abs=1e-7)
    assert (kl_k3(torch.randn(100), torch.randn(100)) >= 0).all()


def test_segments_of_a_rollout_share_its_advantage_and_masked_rollouts_have_no_loss_tokens(tmp_path):
    from agentgym.trajectory import Segment, Trajectory

    seg = lambda: Segment([1, 2], [3, 4, 5], [1, 1, 0], [0.0, 0.0, 0.0])  # noqa: E731
    trajs = [Trajectory("e", "t", segments=[seg(), seg()]), Trajectory("e", "t", segments=[seg()])]
    rows = rows_from_trajectories(trajs, advantages=[0.7, -0.7], trained=[True, False])
    assert [r.advantage for r in rows] == [0.7, 0.7, -0.7]
    assert rows[0].loss_mask == [0, 0, 1, 1, 0] and rows[2].loss_mask == [0] * 5


def test_one_grpo_step_changes_the_weights_and_lowers_the_loss_on_its_batch(tmp_path):
    cfg = tiny_config(tmp_path, "optim.old_logprobs=recompute")
    trainer = GRPOTrainer(cfg)
    trajs, _ = trainer.collect(0, 2)
    rewards = [t.reward for t in trajs]
    assert 0 < sum(rewards) < len(rewards), "the batch needs reward variance"

    groups = [i // cfg.samples_per_task for i in range(len(trajs))]
    adv, trained, _ = group_advantages(rewards, groups, [t.end_reason for t in trajs], cfg.grpo)
    rows = [r for r in rows_from_trajectories(trajs, adv, trained) if any(r.loss_mask)]
    trainer.prepare(rows, recompute_old=True)
    before = trainer.surrogate_loss(rows)["loss"]
    weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    metrics = trainer.update(trajs, 2)

    assert metrics["loss"] == pytest.approx(before, rel=1e-4)
    assert any(not torch.equal(weights[n], p) for n, p in trainer.model.named_parameters())
    assert trainer.surrogate_loss(rows)["loss"] < before
