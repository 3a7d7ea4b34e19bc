"""TRL: one real GRPOTrainer step on a tiny model, its rollouts played multi-turn on an
agentgym env through `agentgym.integrations.trl`."""

import pytest

pytest.importorskip("trl")

from agentgym.integrations.trl import _as_trl, env_reward, make_rollout_func, task_dataset
from agentgym.trajectory import Segment, Trajectory
from tests.test_train_support import COIN_ID


def test_one_trl_grpo_step_trains_on_multi_turn_agentgym_rollouts(tmp_path):
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from agentgym.policy.models import build_tiny_model, load_tokenizer

    torch.manual_seed(0)
    tok = load_tokenizer("tiny-random")
    model = build_tiny_model(tok, init_std=0.2, tied=False)  # varied replies: some win, some do not
    seen = []
    inner = make_rollout_func(COIN_ID, horizon=2, max_new_tokens=4, max_concurrent=8)

    def rollout_func(prompts, trainer):
        out = inner(prompts, trainer)
        seen.append(out)
        return out

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=8, max_steps=1,
        learning_rate=1e-2, beta=0.0, max_completion_length=64, use_cpu=True, report_to="none",
        save_strategy="no", logging_steps=1, disable_tqdm=True, bf16=False,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=env_reward,
        args=args,
        train_dataset=task_dataset(COIN_ID),
        processing_class=tok,
        rollout_func=rollout_func,
    )
    trainer.train()
    assert trainer.state.global_step == 1 and seen
    out = seen[0]
    n = len(out["prompt_ids"])
    assert n == 8 and all(len(out[k]) == n for k in ("completion_ids", "logprobs", "env_mask", "env_reward"))
    for ids, mask, lps in zip(out["completion_ids"], out["env_mask"], out["logprobs"], strict=True):
        assert len(ids) == len(mask) == len(lps)
    # Multi-turn: some episode ran two turns, so its completion holds env tokens (mask 0)
    # between two replies (mask 1).
    assert any(0 in m and m.count(1) > 0 and m.index(0) < len(m) - 1 - m[::-1].index(1) for m in out["env_mask"])
    logged = next(r for r in trainer.state.log_history if "reward" in r)
    assert logged["reward"] == pytest.approx(sum(out["env_reward"]) / n)
    assert len(set(out["env_reward"])) > 1  # a group with wins and losses: advantages that are not all 0
    assert any(not torch.equal(before[k], p) for k, p in model.named_parameters())  # the step changed the weights


def test_an_aborted_episode_is_masked_out_and_moves_no_advantage():
    def episode(task, reward, reason):
        seg = Segment([1, 2], [3, 4, 5], [1, 0, 1], [-0.1, 0.0, -0.2])
        return Trajectory("e", task, reward=reward, end_reason=reason, segments=[seg])

    out = _as_trl([episode("a", 1.0, "success"), episode("a", 0.0, "failure"), episode("a", 0.0, "aborted")])
    assert out["env_mask"] == [[1, 0, 1], [1, 0, 1], [0, 0, 0]]
    assert out["env_reward"] == [1.0, 0.0, 0.5]  # the mean of the task's others: its advantage is 0


def test_a_context_strategy_with_several_segments_is_refused():
    from agentgym.rollout import RolloutOptions

    with pytest.raises(ValueError, match="use context 'full'"):
        make_rollout_func(COIN_ID, horizon=2, options=RolloutOptions(context="summarize"))
