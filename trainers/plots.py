"""The picture of a training run, drawn from its `metrics.jsonl`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plot_training", "read_metrics"]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _moving_average(values: list[float], k: int) -> list[float]:
    out = []
    for i in range(len(values)):
        window = values[max(0, i - k + 1) : i + 1]
        out.append(sum(window) / len(window))
    return out


def _evaluations(records: list[dict[str, Any]]) -> list[tuple[str, dict[int, float]]]:
    """(label, {h: success@h}) for every evaluation in the log, in order."""
    evals = []
    for r in records:
        scores = {int(k.split("@")[1]): v for k, v in r.items() if k.startswith("eval.success@")}
        if scores:
            label = r.get("eval_at") or f"after step {r['step'] + 1}"
            evals.append((label, dict(sorted(scores.items()))))
    return evals


def plot_training(metrics: str | Path, path: str | Path, title: str | None = None) -> Path:
    """Training reward and success per step with the curriculum's horizon (left), and
    success@h of every evaluation made during the run (right)."""
    records = read_metrics(metrics)
    steps = [r for r in records if "reward_mean" in r and "eval_at" not in r]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    if steps:
        x = [r["step"] for r in steps]
        reward = [r["reward_mean"] for r in steps]
        k = max(1, len(steps) // 6)
        ax.plot(x, reward, "o", color="C0", alpha=0.35, ms=4, label="reward (batch mean)")
        ax.plot(x, _moving_average(reward, k), "-", color="C0", label=f"reward ({k}-step mean)")
        ax.plot(x, [r["success_rate"] for r in steps], ".:", color="C2", alpha=0.7, label="success rate")
        if any("invalid_action_rate" in r for r in steps):
            ax.plot(
                x,
                [r.get("invalid_action_rate", 0.0) for r in steps],
                "x:",
                color="C3",
                alpha=0.6,
                label="invalid actions",
            )
        twin = ax.twinx()
        twin.step(x, [r["horizon"] for r in steps], where="post", color="C7", lw=1.5, label="horizon (turns)")
        twin.set_ylabel("horizon (turns)")
        twin.set_ylim(0, max(r["horizon"] for r in steps) * 1.15 + 1)
        twin.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("training step")
    ax.set_ylabel("rate / reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    evals = _evaluations(records)
    for i, (label, scores) in enumerate(evals):
        ax2.plot(list(scores), list(scores.values()), "o-", color=f"C{i}", label=label)
    if evals:
        hs = sorted({h for _, s in evals for h in s})
        ax2.set_xticks(hs, [str(h) for h in hs])
        ax2.legend(fontsize=7, loc="upper left")
    ax2.set_xlabel("interaction turns allowed (h)")
    ax2.set_ylabel("success@h (held-out tasks)")
    ax2.set_ylim(-0.02, 1.05)
    ax2.grid(alpha=0.3)
    fig.suptitle(title or "Training")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
