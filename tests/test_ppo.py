"""PPO: GAE over generated tokens only, per-turn rewards, one update with a value head."""

import pytest
import torch
from agentgym.trainers.common import rows_from_trajectories
from agentgym.trainers.ppo import PPOTrainer, gae, rollout_advantages

from agentgym.trajectory import Segment, Trajectory
from tests.test_train_support import one_torch_thread, tiny_config  # noqa: F401 (autouse fixture)


def test_gae_matches_a_hand_computation():
    adv, ret = gae([0.0, 1.0], [0.5, 0.2], gamma=1.0, lam=0.5)
    # t=1: delta = 1 - 0.2 = 0.8; t=0: delta = 0 + 0.2 - 0.5 = -0.3, A = -0.3 + 0.5 * 0.8 = 0.1
    assert adv == pytest.approx([0.1, 0.8]) and ret == pytest.approx([0.6, 1.0])
    adv, _ = gae([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], gamma=0.5, lam=1.0)
    assert adv == pytest.approx([1.75, 1.5, 1.0])


def test_turn_rewards_sit_on_each_turns_last_generated_token_and_gae_skips_env_tokens():
    # prompt [1, 2]; turn 1 generates 10, 11; env tokens 20, 21; turn 2 generates 12; env 22
    seg = Segment([1, 2], [10, 11, 20, 21, 12, 22], [1, 1, 0, 0, 1, 0], [0.0] * 6)
    traj = Trajectory("e", "t", segments=[seg], turn_rewards=[0.25, 1.0], reward=1.25)
    (row,) = rows_from_trajectories([traj])
    assert row.token_rewards == [0, 0, 0, 0.25, 0, 0, 1.0, 0]
    row.old_values = [9.0, 9.0, 0.5, 0.4, 9.0, 9.0, 0.2, 9.0]  # 9.0 on tokens that are not actions
    rollout_advantages([row], gamma=1.0, lam=1.0, normalize=False)
    # gamma = lam = 1: A_t = (rewards from t on) - V(t), over generated tokens only.
    assert row.token_advantages == pytest.approx([0, 0, 1.25 - 0.5, 1.25 - 0.4, 0, 0, 1.0 - 0.2, 0])
    assert row.returns == pytest.approx([0, 0, 1.25, 1.25, 0, 0, 1.0, 0])


def test_gae_runs_across_the_segments_of_a_rollout():
    first = Segment([1], [10, 20], [1, 0], [0.0, 0.0], kind="summary")
    second = Segment([1], [11, 21], [1, 0], [0.0, 0.0])
    traj = Trajectory("e", "t", segments=[first, second], turn_rewards=[0.0, 1.0], reward=1.0)
    rows = rows_from_trajectories([traj])
    rows[0].old_values, rows[1].old_values = [0.0, 0.3, 0.0], [0.0, 0.6, 0.0]
    rollout_advantages(rows, gamma=1.0, lam=1.0, normalize=False)
    assert rows[0].token_advantages[1] == pytest.approx(1.0 - 0.3)  # the second segment's reward reaches it


def test_one_ppo_step_trains_policy_and_value_head(tmp_path):
    trainer = PPOTrainer(tiny_config(tmp_path, "algo=ppo", "optim.lr=0.001"))
    trajs, _ = trainer.collect(0, 2)
    assert 0 < sum(t.reward for t in trajs) < len(trajs)
    head = {n: p.detach().clone() for n, p in trainer.modules["value_head"].named_parameters()}
    weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    metrics = trainer.update(trajs, 2)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert metrics["value_loss"] > 0 and metrics["grad_norm"] > 0
    assert any(not torch.equal(head[n], p) for n, p in trainer.modules["value_head"].named_parameters())
    assert any(not torch.equal(weights[n], p) for n, p in trainer.model.named_parameters())
