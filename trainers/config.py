"""`TrainConfig`: everything `agentgym train CONFIG` reads, typed, each key with a one-line help.

The algorithm's own settings are not here: each algorithm's module owns its config
dataclass (`GRPOConfig` in trainers/grpo.py, ...), which is the section named after the
algorithm (`grpo:`, `ppo:`, `gigpo:`, or a plug-in's; see `agentgym.trainers.ALGORITHMS`).

Example:
    >>> cfg = load_train_config("configs/quickstart.yaml", ["steps=2", "policy.model=tiny-random"])
    >>> cfg.grpo.eps_high  # the section of cfg.algo's algorithm, here GRPO's
    0.28
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agentgym.trainers.compute import ComputeConfig
from agentgym.trainers.curriculum import CurriculumConfig

from agentgym.config import (
    ConfigError,
    EnvConfig,
    PluginSections,
    PolicyConfig,
    RolloutConfig,
    SamplingConfig,
    deprecated_key,
    help_field,
    load_config,
    plugin_sections,
)

__all__ = [
    "LoraConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainEvalConfig",
    "WarmStartConfig",
    "load_train_config",
]


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
    gradient_checkpointing: bool = help_field(
        False, "recompute each layer's activations in the backward pass: keeps ~1/L of them, at ~1/3 more compute"
    )
    ppo_epochs: int = help_field(1, "passes over each rollout batch")
    minibatches: int = help_field(1, "optimizer steps per pass over the rollout batch")
    old_logprobs: Literal["auto", "recompute", "rollout"] = help_field(
        "auto",
        "ratio reference: auto = current weights when one update per batch (exact, free), else recompute; with "
        "async_steps=1, the weights that sampled (one version older), by the training forward; "
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
class HardwareConfig:
    gpus: int = help_field(0, "GPUs the run uses (0: those detected, or the CPU); for the memory plan")
    gpu_memory_gb: float | None = help_field(None, "memory of each GPU in GB (null: as detected)")
    fsdp: bool = help_field(
        False,
        "shard the weights, gradients and AdamW state over the ranks (FSDP2; full fine-tuning beyond one GPU); "
        "also on when the accelerate config has use_fsdp (configs/accelerate/fsdp2.yaml)",
    )

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ConfigError(f"hardware.gpus must be >= 0, got {self.gpus}")
        if self.gpu_memory_gb is not None and self.gpu_memory_gb <= 0:
            raise ConfigError(f"hardware.gpu_memory_gb must be > 0, got {self.gpu_memory_gb}")


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
    backend: Literal["trl", "plain"] = help_field(
        "plain", "plain: the trainers' own loop (log-probs at the trained tokens only); trl: TRL's SFTTrainer"
    )
    context: Literal["full", "rollout"] = help_field(
        "full",
        "source=oracle: the context the oracle's episodes keep: full, or rollout (rollout.context, e.g. summarize: "
        "the oracle must then answer the summary request, as agentgym.envs.guess_number.oracle:SummarizingGuesser "
        "does, and the warm start teaches the summaries too)",
    )


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


def _algorithm_configs() -> dict[str, type]:
    from agentgym.trainers import ALGORITHMS

    return {name: trainer.Config for name, trainer in ALGORITHMS.items().items() if trainer.Config is not None}


#: GiGPO's keys, which 0.1 read from the grpo section (`grpo.step_weight > 0` was GiGPO).
GIGPO_KEYS = ("step_weight", "step_gamma", "step_anchor")


@dataclass
class TrainConfig(PluginSections):
    algo: str = help_field(
        "grpo",
        "the algorithm (a registered name): grpo, gigpo, ppo, or a plug-in's; its settings are the section "
        "named after it",
    )
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
    optim: OptimConfig = help_field(None, "optimizer and batching", default_factory=OptimConfig)
    lora: LoraConfig = help_field(None, "LoRA (peft)", default_factory=LoraConfig)
    hardware: HardwareConfig = help_field(
        None, "the devices the run is planned for (agentgym train --dry-run)", default_factory=HardwareConfig
    )
    warm_start: WarmStartConfig = help_field(None, "behaviour-cloning warm start", default_factory=WarmStartConfig)
    eval: TrainEvalConfig = help_field(None, "evaluation during training", default_factory=TrainEvalConfig)
    compute: ComputeConfig = help_field(
        None, "a compute budget instead of a number of steps (equal compute across runs)", default_factory=ComputeConfig
    )
    steps: int = help_field(
        100, "training steps (one rollout batch and one update each); with compute.total, the most steps"
    )
    async_steps: int = help_field(
        0,
        "1: the rollouts of step k+1 run while step k's update does, sampled by the weights of before that "
        "update (staleness 1, the ratio's reference recomputed under them); 0: rollouts then update, in turn",
    )
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
    algo_sections: dict[str, Any] = plugin_sections(
        _algorithm_configs, "settings of the algorithm {name} (algo={name})"
    )

    @classmethod
    def upgrade_keys(cls, data: dict[str, Any], prefix: str) -> dict[str, Any]:
        """0.1's GiGPO: `grpo.step_weight > 0` (with grpo.step_gamma, grpo.step_anchor) is
        now `algo: gigpo` with those keys in the `gigpo` section."""
        grpo = data.get("grpo")
        if not isinstance(grpo, dict) or data.get("algo", "grpo") != "grpo":
            return data
        steps = {k: grpo[k] for k in GIGPO_KEYS if k in grpo}
        if not steps:
            return data
        rest = {k: v for k, v in grpo.items() if k not in steps}
        weight = steps.get("step_weight", 0.0)
        on = isinstance(weight, int | float) and not isinstance(weight, bool) and weight > 0
        deprecated_key(
            f"{prefix}grpo.{next(iter(steps))}",
            f"{prefix}algo: gigpo, with {prefix}gigpo.<key>" if on else f"{prefix}algo: gigpo (step_weight 0 is GRPO)",
        )
        if on:
            data["algo"] = "gigpo"
            data["gigpo"] = {**rest, **steps, **(data.get("gigpo") or {})}
            del data["grpo"]
        else:
            data["grpo"] = rest
        return data

    def __post_init__(self) -> None:
        from agentgym.trainers import ALGORITHMS

        self.algo_sections = dict(self.algo_sections)
        if self.algo not in ALGORITHMS:
            raise ConfigError(f"algo: {ALGORITHMS.unknown(self.algo)}")
        section = getattr(self, self.algo, None)  # the algorithm's plug-in section (None: it has no Config)
        if hasattr(section, "check"):
            section.check(self)  # what the algorithm needs of the rest of the config
        if self.steps < 1 or self.tasks_per_step < 1 or self.samples_per_task < 1:
            raise ConfigError("steps, tasks_per_step and samples_per_task must be >= 1")
        if self.policy.backend not in ("hf", "vllm"):
            raise ConfigError(
                f"policy.backend must be 'hf' or 'vllm' for training (got {self.policy.backend!r}): "
                "the trainer generates with the model it trains"
            )
        if self.async_steps not in (0, 1):
            raise ConfigError(
                f"async_steps must be 0 (rollouts, then the update) or 1 (the next step's rollouts during the "
                f"update, one policy version stale), got {self.async_steps}"
            )
        if self.async_steps and self.policy.backend != "hf":
            raise ConfigError(
                "async_steps=1 needs policy.backend=hf: the vLLM engine would load the trained weights while the "
                "update changes them (set async_steps=0 with vllm)"
            )
        if self.optim.micro_batch < 1 or self.optim.ppo_epochs < 1 or self.optim.minibatches < 1:
            raise ConfigError("optim.micro_batch, optim.ppo_epochs and optim.minibatches must be >= 1")
        if self.resume and self.overwrite:
            raise ConfigError("resume=true continues the run in output_dir and overwrite=true deletes it: choose one")
        self.check_compute()
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

    def check_compute(self) -> None:
        """A budgeted run schedules in fractions of its budget, never in steps: two runs with
        equal budgets but unequal steps must see the same schedule at the same compute."""
        c, cur = self.compute, self.curriculum
        stepped = cur.kind in ("stepwise", "multiplicative")
        if c.total is None:
            if cur.every_fraction is not None:
                raise ConfigError("curriculum.every_fraction needs compute.total: it is a fraction of the budget")
            return
        if stepped and cur.every_fraction is None:
            raise ConfigError(
                f"curriculum.every_fraction: with compute.total set, a {cur.kind} curriculum raises the horizon at "
                "fractions of the budget, not every N steps (e.g. curriculum.every_fraction=0.334 for three rounds)"
            )
        if self.eval.every:
            raise ConfigError(
                "eval.every: with compute.total set, evaluations run at fractions of the budget: use "
                "compute.eval_at (e.g. [0.25, 0.5, 0.75]) and eval.every=0"
            )


def load_train_config(path: str | None, overrides: list[str] | None = None) -> TrainConfig:
    """`load_config` for `TrainConfig` (errors name the key)."""
    return load_config(path, TrainConfig, overrides)
