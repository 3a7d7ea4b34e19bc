"""TRL: a `rollout_func` for `trl.GRPOTrainer` that plays any agentgym env multi-turn with the
trainer's own model, and returns what TRL trains on: prompt and completion ids (every turn's
reply and the env's answers in between, token-exact), the sampled tokens' log-probs, the
env mask (1 on generated tokens, 0 on env tokens) and the episode's reward.

TRL's tool-only `environment_factory` cannot play text envs (and rejects SmolLM2's chat
template for tools); a `rollout_func` can. The dataset's prompts are task ids
(`task_dataset`), and the reward function is `env_reward`:

    from trl import GRPOConfig, GRPOTrainer
    from agentgym.integrations.trl import env_reward, make_rollout_func, task_dataset

    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=env_reward,
        train_dataset=task_dataset("agentgym/GuessNumber-16-v0"),
        rollout_func=make_rollout_func("agentgym/GuessNumber-16-v0", horizon=4, max_new_tokens=12),
        args=GRPOConfig(num_generations=4, max_completion_length=256, ...),
    )

An aborted episode (an env failure) says nothing about the policy: its tokens are masked
out (env mask 0) and its reward is the mean of its task's other samples, so it moves no
advantage. Only the full context fits TRL's one sequence per sample (`context: full`).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import gymnasium

from agentgym.policy.base import SamplingParams
from agentgym.rollout import EpisodeSpec, RolloutOptions, run_episodes

__all__ = ["env_reward", "make_rollout_func", "task_dataset"]


def task_dataset(
    env_id: str, split: str = "train", env_kwargs: dict[str, Any] | None = None, num_tasks: int | None = None
):
    """A `datasets.Dataset` whose `prompt` column holds the env's task ids (what
    `make_rollout_func`'s rollouts start from)."""
    from datasets import Dataset

    env = gymnasium.make(env_id, **(env_kwargs or {}))
    try:
        ids = [t.id for t in env.unwrapped.tasks(split)][:num_tasks]
    finally:
        env.close()
    return Dataset.from_list([{"prompt": task_id} for task_id in ids])


def env_reward(completions: list[Any], env_reward: list[float], **_: Any) -> list[float]:
    """The reward function to pass with `make_rollout_func`: each episode's reward."""
    return list(env_reward)


def make_rollout_func(
    env_id: str,
    *,
    horizon: int,
    max_new_tokens: int = 256,
    env_kwargs: dict[str, Any] | None = None,
    options: RolloutOptions | None = None,
    max_concurrent: int = 64,
    seed: int = 0,
) -> Callable[[list[str], Any], dict[str, list]]:
    """A `rollout_func(prompts, trainer)` that plays `env_id` (prompts are task ids) with
    the trainer's model at `trainer.args.temperature`, `horizon` turns at most and
    `max_new_tokens` a reply.

    TRL passes each prompt once (then `num_generations` samples of each are played) or
    repeated (then one sample per entry); both are handled.
    """
    options = options or RolloutOptions(max_new_tokens=max_new_tokens)
    if options.context != "full":
        raise ValueError(f"TRL trains one sequence per sample: use context 'full', not {options.context!r}")
    calls = Counter()

    def rollout_func(prompts: list[str], trainer: Any) -> dict[str, list]:
        from agentgym.policy.hf import HFPolicy

        model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
        policy = HFPolicy(model, trainer.processing_class)
        repeated = len(set(prompts)) < len(prompts)
        per_prompt = 1 if repeated else int(trainer.args.num_generations)
        seen: Counter = Counter()
        specs = []
        for task_id in prompts:
            for _ in range(per_prompt):
                specs.append(EpisodeSpec(task_id, horizon, sample=seen[task_id]))
                seen[task_id] += 1
        calls["n"] += 1
        params = SamplingParams(
            max_new_tokens=options.max_new_tokens,
            temperature=float(getattr(trainer.args, "temperature", 1.0) or 1.0),
            seed=seed + calls["n"],
        )
        trajs = run_episodes(
            policy, lambda: gymnasium.make(env_id, **(env_kwargs or {})), env_id, specs, params, options,
            max_concurrent=max_concurrent,
        )  # fmt: skip
        return _as_trl(trajs)

    return rollout_func


def _as_trl(trajs: list[Any]) -> dict[str, list]:
    out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [], "env_reward": []}
    by_task: dict[str, list[float]] = {}
    for t in trajs:
        if t.end_reason != "aborted":
            by_task.setdefault(t.task_id, []).append(float(t.reward))
    aborted = 0
    for t in trajs:
        seg = t.segments[0] if t.segments else None
        if seg is None or len(t.segments) > 1:
            raise ValueError(f"episode {t.task_id}: {len(t.segments)} segments; TRL needs exactly one (context: full)")
        out["prompt_ids"].append(list(seg.prompt_ids))
        out["completion_ids"].append(list(seg.completion_ids))
        out["logprobs"].append([float(x) for x in seg.logprobs])
        if t.end_reason == "aborted":  # no gradient from it, and no advantage moved by it
            aborted += 1
            out["env_mask"].append([0] * len(seg.loss_mask))
            rewards = by_task.get(t.task_id, [0.0])
            out["env_reward"].append(sum(rewards) / len(rewards))
        else:
            out["env_mask"].append(list(seg.loss_mask))
            out["env_reward"].append(float(t.reward))
    if aborted:
        print(
            f"agentgym: warning: {aborted} of {len(trajs)} episodes aborted (masked out of the loss)", file=sys.stderr
        )
    return out
