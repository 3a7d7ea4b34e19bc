"""GiGPO: step groups from shared states, discounted step returns, per-turn token advantages."""

import pytest
from agentgym.trainers import build_trainer
from agentgym.trainers.common import Row
from agentgym.trainers.gigpo import GiGPOConfig, discounted_returns, step_advantages, token_advantages, turn_anchors

from agentgym.trajectory import Segment, Span, Trajectory
from tests.test_train_support import one_torch_thread, tiny_config  # noqa: F401 (autouse fixture)

TASK = "Find the number in [1, 16]."


def episode(*turns: tuple[str, str], rewards: list[float]) -> Trajectory:
    """A rollout: (reply, observation after it) per turn, with the spans a rollout records."""
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": TASK}]
    seg = Segment([0])
    for t, (reply, obs) in enumerate(turns):
        seg.reply([1], message=len(messages)).turn = t
        seg.extend([2], False)
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": obs}]
    return Trajectory("e", "t", segments=[seg], messages=messages, turn_rewards=rewards, reward=sum(rewards))


A = episode(("8", "higher than 8"), ("12", "Correct!"), rewards=[0.0, 1.0])
B = episode(("8", "higher than 8"), ("9", "higher than 9"), ("10", "higher than 10"), rewards=[0.0, 0.0, 0.0])
C = episode(("13", "Correct!"), rewards=[1.0])
D = episode(("4", "higher than 4"), ("9", "higher than 9"), ("10", "Correct!"), rewards=[0.0, 0.0, 1.0])


def test_anchors_are_the_observation_history_or_the_latest_observation():
    assert turn_anchors(A, "history") == [TASK, TASK + "\x1ehigher than 8"]
    assert turn_anchors(D, "observation") == [TASK, "higher than 4", "higher than 9"]
    broken = episode(("8", "x"), rewards=[0.0, 0.0])  # more turns than replies: cannot be matched
    assert turn_anchors(broken) is None


def test_discounted_returns():
    assert discounted_returns([0.0, 0.0, 1.0], 0.5) == [0.25, 0.5, 1.0]


def test_step_advantages_compare_turns_that_share_a_state():
    cfg = GiGPOConfig(step_gamma=0.9, advantage_std=False)
    step, info = step_advantages([A, B, C, D], [0, 0, 0, 0], [True] * 4, cfg)
    # Turn 0: every rollout starts from the task; returns 0.9 (A), 0 (B), 1 (C), 0.81 (D):
    # the sooner a success, the higher.
    mean0 = (0.9 + 0 + 1 + 0.81) / 4
    assert step[0][0] == pytest.approx(0.9 - mean0) and step[2][0] == pytest.approx(1 - mean0)
    assert step[1][0] == pytest.approx(-mean0) and step[3][0] == pytest.approx(0.81 - mean0)
    # Turn 1: A and B share "higher than 8"; A then wins (1), B does not (0).
    assert step[0][1] == pytest.approx(0.5) and step[1][1] == pytest.approx(-0.5)
    # Unshared states: no step signal.
    assert step[1][2] == 0.0 and step[3][1] == 0.0 and step[3][2] == 0.0
    assert info["step_groups"] == 2.0 and info["steps"] == 9.0 and info["steps_in_step_groups"] == 6.0
    # "observation" anchors also merge B's and D's turns after "higher than 9" (different
    # histories): D then wins, B does not.
    step_obs, _ = step_advantages([A, B, C, D], [0] * 4, [True] * 4, GiGPOConfig(step_anchor="observation"))
    assert step_obs[3][2] > 0 > step_obs[1][2]
    # Other tasks' rollouts and excluded (aborted) rollouts never join a step group.
    alone, _ = step_advantages([A, B], [0, 1], [True, True], cfg)
    assert alone == [[0.0, 0.0], [0.0, 0.0, 0.0]]
    excluded, _ = step_advantages([A, B], [0, 0], [True, False], cfg)
    assert excluded == [[0.0, 0.0], None]


def test_token_advantages_add_each_turns_step_advantage_to_the_episode_advantage():
    # One rollout in two segments: turn 0 in the first, turns 1 and 2 in the second.
    rows = [
        Row([0] * 6, [0, 0, 1, 1, 0, 0], [0.0] * 6, traj_index=0, spans=[Span(2, 4, turn=0)]),
        Row([0] * 8, [0, 1, 1, 0, 0, 1, 0, 0], [0.0] * 8, traj_index=0, spans=[Span(1, 3, turn=1), Span(5, 6, turn=2)]),
        Row([0] * 4, [0, 1, 1, 0], [0.0] * 4, traj_index=1, spans=[Span(1, 3, turn=0)]),
    ]
    token_advantages(rows, episode=[0.5, -1.0], step=[[0.1, 0.2, 0.3], None], weight=2.0)
    assert rows[0].token_advantages == [0, 0, 0.7, 0.7, 0, 0]
    assert rows[1].token_advantages == pytest.approx([0, 0.9, 0.9, 0, 0, 1.1, 0, 0])
    assert rows[2].token_advantages == [0, -1.0, -1.0, 0]  # no anchors: A_E alone


def test_a_gigpo_step_trains(tmp_path):
    trainer = build_trainer(
        tiny_config(tmp_path, "steps=1", "algo=gigpo", "gigpo.step_weight=1.0", "gigpo.mask_over_turn=false")
    )
    trajs, _ = trainer.collect(0, 2)
    metrics = trainer.update(trajs, 2)
    assert metrics["step_groups"] >= 2  # at least every task's first turn
    assert 0 < metrics["step_group_share"] <= 1
    assert metrics["grad_norm"] > 0


def test_a_summary_between_turns_never_shifts_a_turns_step_advantage():
    # Turn 0's action, then a trained summary, then turn 1's action (a SUPO segment boundary
    # in between is the same): the summary gets A_E alone, turn 1 gets its own A_S.
    row = Row(
        [0] * 8,
        [0, 1, 0, 1, 1, 0, 1, 0],
        [0.0] * 8,
        spans=[Span(1, 2, turn=0), Span(3, 5, "summary"), Span(6, 7, turn=1)],
    )
    token_advantages([row], episode=[0.5], step=[[0.1, 0.3]], weight=1.0)
    assert row.token_advantages == pytest.approx([0, 0.6, 0, 0.5, 0.5, 0, 0.8, 0])


def test_summarized_rollouts_are_anchored_on_their_env_observations(smol_tokenizer):
    from tests.test_context import kv_run

    (traj,) = kv_run(smol_tokenizer, n=1, context="summarize", max_summaries=10)
    anchors = turn_anchors(traj, "observation")
    assert traj.summaries >= 2 and anchors is not None and len(anchors) == traj.turns == 16
    env_observations = [traj.messages[1]["content"]] + [
        traj.messages[span.message + 1]["content"] for _, (_, span) in sorted(traj.turn_spans().items())
    ]
    assert anchors == env_observations[:16]
    assert not any(a.startswith(traj.messages[1]["content"] + "\n\nWe are at") for a in anchors[1:])
    history = turn_anchors(traj, "history")
    assert history[5] == "\x1e".join(anchors[:6])
