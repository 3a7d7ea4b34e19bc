"""PPO: GAE over generated tokens only, per-turn rewards, one update with a value head."""

import pytest
import torch
from agentgym.trainers.common import rows_from_trajectories
from agentgym.trainers.ppo import PPOTrainer, gae, rollout_advantages, trained_rollouts

from agentgym.trajectory import Segment, Trajectory
from tests.test_train_support import one_torch_thread, tiny_config  # noqa: F401 (autouse fixture)


def test_gae_matches_a_hand_computation():
    adv, ret = gae([0.0, 1.0], [0.5, 0.2], gamma=1.0, lam=0.5)
    # t=1: delta = 1 - 0.2 = 0.8; t=0: delta = 0 + 0.2 - 0.5 = -0.3, A = -0.3 + 0.5 * 0.8 = 0.1
    assert adv == pytest.approx([0.1, 0.8]) and ret == pytest.approx([0.6, 1.0])
    adv, _ = gae([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], gamma=0.5, lam=1.0)
    assert adv == pytest.approx([1.75, 1.5, 1.0])


def segment(prompt, *parts, kind="turns"):
    """A segment from (tokens, turn) parts: turn an int for an action that produced that
    env turn, "summary" for a summary, None for env tokens."""
    seg = Segment(list(prompt), kind=kind)
    for ids, turn in parts:
        if turn is None:
            seg.extend(ids, False)
        elif turn == "summary":
            seg.reply(ids, kind="summary")
        else:
            seg.reply(ids).turn = turn
    return seg


def test_turn_rewards_sit_on_each_turns_last_generated_token_and_gae_skips_env_tokens():
    # prompt [1, 2]; turn 1 generates 10, 11; env tokens 20, 21; turn 2 generates 12; env 22
    seg = segment([1, 2], ([10, 11], 0), ([20, 21], None), ([12], 1), ([22], None))
    traj = Trajectory("e", "t", segments=[seg], turn_rewards=[0.25, 1.0], reward=1.25)
    (row,) = rows_from_trajectories([traj])
    assert row.token_rewards == [0, 0, 0, 0.25, 0, 0, 1.0, 0]
    row.old_values = [9.0, 9.0, 0.5, 0.4, 9.0, 9.0, 0.2, 9.0]  # 9.0 on tokens that are not actions
    rollout_advantages([row], gamma=1.0, lam=1.0, normalize=False)
    # gamma = lam = 1: A_t = (rewards from t on) - V(t), over generated tokens only.
    assert row.token_advantages == pytest.approx([0, 0, 1.25 - 0.5, 1.25 - 0.4, 0, 0, 1.0 - 0.2, 0])
    assert row.returns == pytest.approx([0, 0, 1.25, 1.25, 0, 0, 1.0, 0])


def test_gae_runs_across_the_segments_of_a_rollout():
    first = segment([1], ([10], 0), ([20], None), kind="summary")
    second = segment([1], ([11], 1), ([21], None))
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


def test_turn_rewards_follow_the_recorded_spans_past_trained_summaries(smol_tokenizer):
    """A trained SUPO summary is a generated reply but not a turn: every turn's reward still
    sits on the last token of the action that earned it, and none on a summary."""
    from tests.test_context import kv_run

    (traj,) = kv_run(smol_tokenizer, n=1, context="summarize", max_summaries=10)
    assert traj.summaries >= 2 and traj.turns == 16 and all(r > 0 for r in traj.turn_rewards)
    replies = [m["content"] for m in traj.messages if m["role"] == "assistant"]
    actions = [r for r in replies if not r.startswith("<summary>")]
    rows = rows_from_trajectories([traj])
    seen = 0
    for row in rows:
        for span in row.spans:
            text = smol_tokenizer.decode(row.input_ids[span.start : span.end - 1])  # without the end of turn
            reward = row.token_rewards[span.end - 1]
            if span.kind == "summary":
                assert text.startswith("<summary>") and reward == 0.0
            else:
                assert text == actions[span.turn] and reward == traj.turn_rewards[span.turn]
                seen += 1
    assert seen == 16 and sum(x for r in rows for x in r.token_rewards) == pytest.approx(traj.reward)


def test_ppo_leaves_over_turn_and_overlong_rollouts_out_of_the_loss_by_default():
    from agentgym.trainers.ppo import PPOConfig

    trajs = [Trajectory("e", "t", end_reason=r) for r in ("success", "failure", "over_turn", "overlong", "aborted")]
    assert trained_rollouts(trajs, PPOConfig()) == [True, True, False, False, False]
    unmasked = PPOConfig(mask_over_turn=False, mask_overlong=False)
    assert trained_rollouts(trajs, unmasked) == [True, True, True, True, False]


def test_a_cut_rollout_bootstraps_from_the_value_after_its_last_generated_token():
    def rows(end_reason):
        seg = segment([1], ([10, 11], 0), ([20], None))
        traj = Trajectory("e", "t", segments=[seg], turn_rewards=[0.5], reward=0.5, end_reason=end_reason)
        (row,) = rows_from_trajectories([traj])
        row.old_values, row.end_value = [0.0, 0.2, 0.3, 0.0], 0.8
        rollout_advantages([row], gamma=0.9, lam=1.0, normalize=False)
        return row

    # Ended by the env: nothing follows. Cut by the turn cap: V(after the last token) = 0.8 follows.
    assert rows("failure").token_advantages[2] == pytest.approx(0.5 - 0.3)
    assert rows("over_turn").token_advantages[2] == pytest.approx(0.5 + 0.9 * 0.8 - 0.3)
    assert rows("overlong").returns[2] == pytest.approx(0.5 + 0.9 * 0.8)


def test_ppo_prepare_records_the_value_after_each_rows_last_generated_token(tmp_path):
    trainer = PPOTrainer(tiny_config(tmp_path, "algo=ppo", "ppo.mask_over_turn=false"))
    torch.nn.init.normal_(trainer.modules["value_head"].weight)  # a head that is not all zeros
    trajs, _ = trainer.collect(0, 2)
    rows = [r for r in rows_from_trajectories(trajs) if any(r.loss_mask)]
    trainer.prepare(rows)
    from agentgym.trainers.common import pad_rows

    for row in rows[:3]:
        last = max(t for t, m in enumerate(row.loss_mask) if m)
        # The value of the state that ends with the last generated token: the head on its hidden state.
        extended = pad_rows([row], trainer.pad_id)
        _, _, after = trainer.forward(extended, grad=False)
        assert row.end_value == pytest.approx(float(after[0, last]), abs=1e-4)  # batch padding: float noise
        assert row.end_value != pytest.approx(row.old_values[last], abs=1e-4)  # not the value before it
    trainer.close()
