"""The training plot is drawn from metrics.jsonl: per-step reward with the horizon, and
success@h of every evaluation."""

import json

from agentgym.trainers.plots import _evaluations, plot_training


def test_training_plot_reads_steps_and_evaluations(tmp_path):
    rows = [
        {"step": -1, "warm_start": True, "loss_before": 1.0},
        {"step": 0, "eval_at": "start", "eval.success@1": 0.1, "eval.success@2": 0.2},
    ]
    rows += [
        {"step": s, "horizon": 2 + s // 3, "reward_mean": s / 10, "success_rate": s / 10, "invalid_action_rate": 0.1}
        for s in range(6)
    ]
    rows[-1].update({"eval.success@1": 0.3, "eval.success@2": 0.5})
    rows.append({"step": 6, "eval_at": "end", "eval.success@1": 0.4, "eval.success@2": 0.6})
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _evaluations(rows) == [
        ("start", {1: 0.1, 2: 0.2}),
        ("after step 6", {1: 0.3, 2: 0.5}),
        ("end", {1: 0.4, 2: 0.6}),
    ]
    out = plot_training(metrics, tmp_path / "training.png")
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
