"""`TrainConfig`: everything `agentgym train CONFIG` reads, typed, each key with a one-line help.

Example:
    >>> cfg = load_config("configs/quickstart.yaml", TrainConfig, ["steps=2", "policy.model=tiny-random"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agentgym.config import (
    ConfigError,
    EnvConfig,
    PolicyConfig,
    RolloutConfig,
    SamplingConfig,
    help_field,
    load_config,
)
from agentgym.curriculum import CurriculumConfig

__all__ = [
    "GRPOConfig",
    "LoraConfig",
    "OptimConfig",
    "PPOConfig",
    "TrainConfig",
    "TrainEvalConfig",
    "WarmStartConfig",
    "load_train_config",
]


@dataclass
class GRPOConfig:
    advantage_std: bool = help_field(True, "divide by the group's std (GRPO); false = Dr. GRPO")
    loss_norm: Literal["token_mean", "constant"] = help_field(
        "token_mean",
        "token_mean: over every generated token of the batch (DAPO); constant (Dr. GRPO): the same divisor "
        "every step, tasks_per_step x samples_per_task x sampling.max_new_tokens x the curriculum's largest horizon",
    )
    drop_equal_groups: bool = help_field(False, "DAPO: drop groups whose rewards are all equal (no signal)")
    eps_low: float = help_field(0.2, "lower clip of the ratio: 1 - eps_low")
    eps_high: float = help_field(0.28, "upper clip of the ratio: 1 + eps_high (DAPO's clip-higher)")
    kl_coef: float = help_field(
        0.0, "beta of the k3 KL to the frozen policy RL starts from, after any warm start (0 = no reference)"
    )
    mask_over_turn: bool = help_field(
        True, "Mini-o3: rollouts that hit the turn cap count in the group stats with reward 0, no loss"
    )
    mask_overlong: bool = help_field(True, "overlong rollouts (context full): group stats with reward 0, no loss")
    mask_aborted: bool = help_field(True, "aborted rollouts (env/infra failure): out of the group stats and the loss")
    eps: float = help_field(1e-6, "added to the std")
    step_weight: float = help_field(
        0.0, "GiGPO: weight of the step-level advantage from turns that share a state (0 = off; the paper used 1)"
    )
    step_gamma: float = help_field(0.95, "GiGPO: discount of the step returns (shorter successes score higher)")
    step_anchor: Literal["history", "observation"] = help_field(
        "history", "GiGPO: a turn's state = every observation so far (exact) or only the latest one (verl-agent)"
    )


@dataclass
class PPOConfig:
    gamma: float = help_field(1.0, "discount over generated tokens")
    lam: float = help_field(0.95, "GAE lambda")
    value_clip: float = help_field(0.2, "clip of the value change against the pre-update values")
    value_coef: float = help_field(0.5, "weight of the value loss")
    eps_low: float = help_field(0.2, "lower clip of the ratio")
    eps_high: float = help_field(0.2, "upper clip of the ratio")
    normalize_advantages: bool = help_field(True, "whiten advantages over the batch's generated tokens")
    mask_over_turn: bool = help_field(
        True,
        "Mini-o3: rollouts that hit the turn cap get no loss; off: they train and bootstrap from the value "
        "after their last generated token",
    )
    mask_overlong: bool = help_field(
        True, "overlong rollouts (context full) get no loss; off: they train and bootstrap as over-turn ones"
    )
    mask_aborted: bool = help_field(True, "leave aborted rollouts out of the loss")


@dataclass
class OptimConfig:
    lr: float = help_field(1e-6, "AdamW learning rate")
    weight_decay: float = help_field(0.0, "AdamW weight decay")
    betas: list[float] = help_field([0.9, 0.999], "AdamW betas")
    schedule: Literal["constant", "linear", "cosine"] = help_field("constant", "LR schedule after warm-up")
    warmup_steps: int = help_field(0, "optimizer steps of linear LR warm-up")
    max_grad_norm: float = help_field(1.0, "gradient clipping (0 = off)")
    micro_batch: int = help_field(8, "rows (segments) per forward/backward; gradients accumulate over the batch")
    logprob_chunk: int = help_field(256, "positions per log-softmax chunk (bounds the vocab-sized memory)")
    ppo_epochs: int = help_field(1, "passes over each rollout batch")
    minibatches: int = help_field(1, "optimizer steps per pass over the rollout batch")
    old_logprobs: Literal["auto", "recompute", "rollout"] = help_field(
        "auto",
        "ratio reference: auto = current weights when one update per batch (exact, free), else recompute; "
        "recompute = a no-grad pass under the pre-update weights; rollout = the sampler's log-probs",
    )


@dataclass
class LoraConfig:
    enabled: bool = help_field(False, "train a LoRA adapter (peft) instead of every weight")
    r: int = help_field(16, "LoRA rank")
    alpha: int = help_field(32, "LoRA alpha")
    dropout: float = help_field(0.0, "LoRA dropout")
    target_modules: list[str] = help_field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "modules that get adapters"
    )


@dataclass
class WarmStartConfig:
    enabled: bool = help_field(False, "behaviour cloning on successful trajectories before RL")
    source: Literal["oracle", "file"] = help_field("oracle", "oracle: collect with a scripted policy; file: load")
    oracle: str | None = help_field(
        None,
        "source=oracle (required): module:Class of a scripted oracle for this env (agentgym.oracle): "
        "respond(messages) -> reply; one written turn by turn subclasses agentgym.oracle.ReplayOracle",
    )
    oracle_kwargs: dict[str, Any] = help_field({}, "constructor arguments of the oracle")
    path: str | None = help_field(None, "source=file: trajectories (.jsonl/.parquet); only successes are used")
    episodes: int = help_field(128, "source=oracle: episodes to collect (successes are kept)")
    horizon: int = help_field(8, "source=oracle: turn budget of the collected episodes")
    epochs: float = help_field(1.0, "passes over the successful trajectories")
    batch_size: int = help_field(16, "trajectories per optimizer step")
    lr: float = help_field(1e-4, "learning rate of the warm start")
    backend: Literal["trl", "plain"] = help_field("trl", "trl: TRL's SFTTrainer; plain: the trainers' own loop")


@dataclass
class TrainEvalConfig:
    every: int = help_field(0, "evaluate every N steps (0 = only before and after training)")
    at_start: bool = help_field(True, "evaluate before the first step")
    at_end: bool = help_field(True, "evaluate after the last step")
    horizons: list[int] = help_field([1, 2, 4, 8], "turn budgets to evaluate at")
    split: str = help_field("test", "split of the evaluation tasks")
    num_tasks: int | None = help_field(16, "first N tasks of the split (null: all)")
    samples_per_task: int = help_field(2, "episodes per task")
    temperature: float | None = help_field(None, "sampling temperature (null: the training one)")


@dataclass
class TrainConfig:
    algo: Literal["grpo", "ppo"] = help_field("grpo", "grpo or ppo")
    env: EnvConfig = help_field(
        None, "the environment (training split)", default_factory=lambda: EnvConfig(split="train")
    )
    policy: PolicyConfig = help_field(
        None,
        "the trained model; backend hf, or vllm (generation by a vLLM engine on the GPU, weights synced)",
        default_factory=PolicyConfig,
    )
    sampling: SamplingConfig = help_field(None, "per-turn sampling of rollouts", default_factory=SamplingConfig)
    rollout: RolloutConfig = help_field(None, "rollout settings", default_factory=RolloutConfig)
    curriculum: CurriculumConfig = help_field(None, "the horizon schedule", default_factory=CurriculumConfig)
    grpo: GRPOConfig = help_field(None, "GRPO settings", default_factory=GRPOConfig)
    ppo: PPOConfig = help_field(None, "PPO settings", default_factory=PPOConfig)
    optim: OptimConfig = help_field(None, "optimizer and batching", default_factory=OptimConfig)
    lora: LoraConfig = help_field(None, "LoRA (peft)", default_factory=LoraConfig)
    warm_start: WarmStartConfig = help_field(None, "behaviour-cloning warm start", default_factory=WarmStartConfig)
    eval: TrainEvalConfig = help_field(None, "evaluation during training", default_factory=TrainEvalConfig)
    steps: int = help_field(100, "training steps (one rollout batch and one update each)")
    tasks_per_step: int = help_field(4, "tasks per rollout batch")
    samples_per_task: int = help_field(8, "G: rollouts per task (the GRPO group)")
    seed: int = help_field(0, "seed of task sampling, rollouts and initialisation")
    threads: int | None = help_field(
        None, "torch CPU threads (null: torch's default); 1 is fastest on cores shared with other jobs"
    )
    output_dir: str = help_field("runs/train", "checkpoints, metrics.jsonl, TensorBoard logs, the final model")
    checkpoint_every: int = help_field(10, "save a checkpoint every N steps (0 = only at the end, or when stopped)")
    keep_checkpoints: int = help_field(2, "most recent checkpoints kept")
    resume: bool = help_field(False, "continue from the latest intact checkpoint in output_dir")
    overwrite: bool = help_field(
        False, "replace the run already in output_dir (deletes its metrics, checkpoints and evaluations)"
    )
    tensorboard: bool = help_field(True, "write TensorBoard events to output_dir/tb")
    wandb_project: str | None = help_field(None, "log to this W&B project (needs wandb)")
    progress: bool = help_field(True, "show a progress bar")
    save_final: bool = help_field(True, "save the trained model (LoRA merged) to output_dir/final")

    def __post_init__(self) -> None:
        if self.steps < 1 or self.tasks_per_step < 1 or self.samples_per_task < 1:
            raise ConfigError("steps, tasks_per_step and samples_per_task must be >= 1")
        if self.policy.backend not in ("hf", "vllm"):
            raise ConfigError(
                f"policy.backend must be 'hf' or 'vllm' for training (got {self.policy.backend!r}): "
                "the trainer generates with the model it trains"
            )
        if self.algo == "grpo" and self.samples_per_task < 2:
            raise ConfigError("samples_per_task must be >= 2 for GRPO: advantages are relative to the group")
        if self.optim.micro_batch < 1 or self.optim.ppo_epochs < 1 or self.optim.minibatches < 1:
            raise ConfigError("optim.micro_batch, optim.ppo_epochs and optim.minibatches must be >= 1")
        if self.grpo.step_weight < 0 or not 0.0 < self.grpo.step_gamma <= 1.0:
            raise ConfigError("grpo.step_weight must be >= 0 and grpo.step_gamma in (0, 1]")
        if self.resume and self.overwrite:
            raise ConfigError("resume=true continues the run in output_dir and overwrite=true deletes it: choose one")
        ws = self.warm_start
        if ws.enabled and ws.source == "file" and not ws.path:
            raise ConfigError("warm_start.source=file needs warm_start.path")
        if ws.enabled and ws.source == "oracle" and not ws.oracle:
            raise ConfigError(
                "warm_start.source=oracle needs warm_start.oracle: module:Class of a scripted policy for this env "
                "(e.g. agentgym.envs.guess_number.oracle:ConsistentRandomGuesser for GuessNumber), and its "
                "constructor arguments in warm_start.oracle_kwargs"
            )
        s = self.sampling
        if s.temperature <= 0:
            raise ConfigError(
                f"sampling.temperature must be > 0 for training (got {s.temperature}): rollouts must be sampled; "
                "evaluate greedily with eval.temperature=0"
            )
        if s.top_p < 1.0 or s.top_k > 0:
            raise ConfigError(
                f"sampling.top_p={s.top_p}, sampling.top_k={s.top_k}: training needs top_p=1 and top_k=0. Rollouts "
                "record the log-probs of the distribution they sample from; truncated, it is not the model's "
                "distribution the loss computes, so the samples would be off-policy"
            )


def load_train_config(path: str | None, overrides: list[str] | None = None) -> TrainConfig:
    """`load_config` for `TrainConfig` (errors name the key)."""
    return load_config(path, TrainConfig, overrides)
