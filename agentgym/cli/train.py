"""`agentgym train CONFIG [key=value ...]`: GRPO or PPO with a curriculum over the horizon.

Writes checkpoints, metrics.jsonl, TensorBoard logs, evaluations and the trained model
(output_dir/final, loadable by `agentgym eval ... policy.model=OUTPUT_DIR/final`).

    agentgym train configs/quickstart.yaml
    agentgym train configs/quickstart.yaml resume=true          # continue from the latest checkpoint
    agentgym train configs/quickstart.yaml steps=4 lora.enabled=false
    agentgym train --help-config

Ctrl-C (SIGINT) or SIGTERM stops a run after the step in progress: it writes a checkpoint
of the steps done, says on stderr how to continue (`resume=true`) and exits with the
shell's status for the signal, 130 or 143, so that `agentgym train ... && agentgym eval ...`
does not go on with an unfinished model, nor a job scheduler count the run as done. A
second Ctrl-C quits at once.
"""

from __future__ import annotations

import argparse
import signal

from agentgym.cli.common import config_from_args
from agentgym.config import ConfigError, config_help


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train an agent with GRPO or PPO",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="YAML config (see configs/); omitted: all defaults")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. steps=10 resume=true")
    p.add_argument("--help-config", action="store_true", help="list every config key with its type, default and help")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the memory plan per device (weights, optimizer, activations...) and stop",
    )
    p.add_argument("--force", action="store_true", help="train even when the memory plan says it cannot fit")
    return p


def _print_summary(result: dict) -> None:
    last = result["last"]
    if last:
        print(
            f"\nstep {result['step']}: reward {last.get('reward_mean', float('nan')):.3f}, "
            f"success {last.get('success_rate', float('nan')):.3f}, horizon {last.get('horizon')}"
        )
    for when, scores in result["evals"].items():
        print(f"eval {when}: " + ", ".join(f"{k.split('.')[-1]}={v:.3f}" for k, v in scores.items()))


def _memory_check(cfg, dry_run: bool, force: bool) -> bool:
    """Print the plan (--dry-run), or check it before anything loads: on a GPU a run that
    cannot fit is refused (--force overrides); on the CPU it is a warning."""
    import sys

    from agentgym.trainers.memory import memory_plan

    try:
        plan = memory_plan(cfg)
    except FileNotFoundError as exc:  # a model whose shape is unknown offline: nothing to check against
        if dry_run:
            raise ConfigError(f"policy.model: {exc}") from None
        return True
    if dry_run:
        print(plan.table())
    if plan.fits:
        return True
    need, have = plan.total / 1e9, plan.capacity / 1e9
    fix = ("lora.enabled=true, a smaller optim.micro_batch, rollout.max_concurrent or rollout.max_context_tokens, "
           "or more devices")  # fmt: skip
    if dry_run:
        print(f"does not fit: ~{need:.1f} GB per device, {have:.1f} GB on {plan.device}; try {fix}")
        return True
    if plan.device.startswith("cuda") and not force:
        print(f"error: the run needs ~{need:.1f} GB per device and {plan.device} has {have:.1f} GB "
              f"(agentgym train ... --dry-run shows the terms): use {fix}; --force trains anyway", file=sys.stderr)  # fmt: skip
        return False
    print(f"warning: the run may need ~{need:.1f} GB on {plan.device}, which has {have:.1f} GB ({fix})",
          file=sys.stderr)  # fmt: skip
    return True


def run(args: argparse.Namespace) -> int:
    from agentgym.trainers.config import TrainConfig, load_train_config

    if args.help_config:
        print("\n".join(config_help(TrainConfig)))
        return 0
    cfg = config_from_args(args, load_train_config)
    if not _memory_check(cfg, args.dry_run, args.force):
        return 2
    if args.dry_run:
        return 0
    from agentgym.trainers import build_trainer

    trainer = build_trainer(cfg)  # checks what the launch reveals too (the env, the folder, the processes)
    result = trainer.train()
    stopped = result["stopped"]  # the signal that stopped the run early, on every rank alike
    status = 128 + signal.Signals[stopped] if stopped else 0
    if not trainer.dist.is_main:
        return status  # the main rank reports for all
    _print_summary(result)
    print(f"\nmetrics: {trainer.out / 'metrics.jsonl'}  (tensorboard --logdir {trainer.out / 'tb'})")
    print(f"plot:    {trainer.out / 'training.png'}")
    if cfg.save_final and not stopped:
        print(f"model:   {trainer.out / 'final'}")
    return status
