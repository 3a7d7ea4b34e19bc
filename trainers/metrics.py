"""What a training run logs: one JSON line per step in metrics.jsonl (TensorBoard and
W&B beside it), and the reward and ending statistics of a rollout batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentgym import jsonio
from agentgym.rollout import episode_rates
from agentgym.trajectory import Trajectory

__all__ = ["MetricsLogger", "batch_metrics"]


class MetricsLogger:
    """One JSON line per step in `metrics.jsonl`, TensorBoard scalars, W&B when configured
    (nothing at all when not `enabled`: the ranks other than the main one)."""

    def __init__(
        self, out: Path, tensorboard: bool, wandb_project: str | None, config: dict[str, Any], enabled: bool = True
    ):
        self.path = out / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if tensorboard and enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"))
        self.wandb = None
        if wandb_project and enabled:
            try:
                import wandb
            except ImportError:
                raise RuntimeError(f"wandb_project={wandb_project!r} needs wandb: pip install wandb") from None
            self.wandb = wandb.init(project=wandb_project, config=config, dir=str(out))

    def log(self, record: dict[str, Any], step: int) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(jsonio.dumps(record) + "\n")
        scalars = {k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k.replace(".", "/"), v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def truncate(self, step: int) -> None:
        """Drop records of steps >= `step` (written after the checkpoint a run resumes from)."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for ln in self.path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(ln)
            except json.JSONDecodeError:  # a line cut by the interruption: the resumed run rewrites it
                continue
            if isinstance(record, dict) and record.get("step", -1) < step:
                kept.append(ln)
        self.path.write_text("".join(ln + "\n" for ln in kept))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def batch_metrics(trajs: list[Trajectory]) -> dict[str, float]:
    """Reward and ending statistics of a rollout batch: `episode_rates` (over the
    non-aborted rollouts, the aborted count beside them) and the mean reward and turns of
    the non-aborted rollouts; aborted ones never count as zeros."""
    scored = [t for t in trajs if t.end_reason != "aborted"]
    n = len(scored)
    return {
        "reward_mean": sum(t.reward for t in scored) / n if n else float("nan"),
        **episode_rates(trajs),
        "turns_mean": sum(t.turns for t in scored) / n if n else float("nan"),
        "generated_tokens": float(sum(t.generated_tokens for t in trajs)),
    }
