"""The memory plan (`agentgym train --dry-run`) against the measured peak of a training
step on the CPU.

Each variant runs in a fresh process: it builds the trainer (the model loads), notes the
resident memory, runs one GRPO update on a batch of rows that fill the context
(`optim.micro_batch` rows of `rollout.max_context_tokens` tokens, every completion token
trained, rewards alternating so every row carries gradient), and notes the peak (VmHWM).
The measured step memory (peak minus the memory after loading) is compared with the plan's
terms that the step allocates: gradients, AdamW moments and activations without
checkpointing (the weights are loaded before, and no rollout runs, so no KV cache).

    python bench/memory_plan.py              # SmolLM2-135M full and LoRA, 4 x 512 tokens; the tiny model
    python bench/memory_plan.py --tokens 1024 --rows 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from goals import load_line

VARIANTS = {
    "smollm2-135m full": ("smollm2-135m", False),
    "smollm2-135m LoRA": ("smollm2-135m", True),
    "tiny-random full": ("tiny-random", False),
}


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def measure(model: str, lora: bool, rows: int, tokens: int) -> dict:
    """In this (fresh) process: memory after loading, peak after one update, and the plan."""
    import torch
    from agentgym.trainers import build_trainer
    from agentgym.trainers.config import load_train_config
    from agentgym.trainers.memory import memory_plan

    from agentgym.trajectory import Segment, Span, Trajectory

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        settings = [f"policy.model={model}", f"lora.enabled={str(lora).lower()}", f"optim.micro_batch={rows}",
                    f"rollout.max_context_tokens={tokens}", f"samples_per_task={rows}", "tasks_per_step=1",
                    "tensorboard=false", "progress=false", "save_final=false", "eval.at_start=false",
                    "eval.at_end=false", "threads=1", "optim.lr=1e-5", f"output_dir={out}"]  # fmt: skip
        cfg = load_train_config(None, settings)
        trainer = build_trainer(cfg)
        trainer.model.train()
        loaded = _status("VmRSS")
        prompt = 64
        trajs = []
        for i in range(rows):
            seg = Segment(list(range(100, 100 + prompt)))
            ids = [(200 + 7 * k + 13 * i) % 40000 + 50 for k in range(tokens - prompt)]  # rows share the prompt only
            seg.reply(ids, [-1.0] * len(ids))
            seg.spans = [Span(0, len(ids), "action", 0, None)]
            trajs.append(Trajectory("e", "t0", sample=i, horizon=1, segments=[seg], reward=float(i % 2), turns=1,
                                    turn_rewards=[float(i % 2)], end_reason="success" if i % 2 else "failure"))  # fmt: skip
        trainer.update(trajs, 1)
        peak = _status("VmHWM")
        plan = memory_plan(cfg, device="cpu")
    predicted = sum(plan.terms.get(k, 0.0) for k in ("gradients", "AdamW moments")) + plan.activations
    return {"loaded": loaded, "peak": peak, "measured": peak - loaded, "predicted": predicted,
            "weights": plan.terms["weights"]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:
        model, lora = VARIANTS[args.variant]
        print(json.dumps(measure(model, lora, args.rows, args.tokens)))
        return
    print(f"at start: {load_line()}; {args.rows} rows x {args.tokens} tokens, one GRPO update, fp32 on the CPU")
    print(f"{'variant':22} {'weights (plan)':>14} {'step: measured':>15} {'planned':>9} {'measured/planned':>17}")
    for name in VARIANTS:
        cmd = [sys.executable, __file__, "--variant", name, "--rows", str(args.rows), "--tokens", str(args.tokens)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name}: failed: {done.stderr[-800:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:22} {r['weights'] / 1e9:12.3f} GB {r['measured'] / 1e9:12.3f} GB {r['predicted'] / 1e9:6.3f} GB "
              f"{r['measured'] / r['predicted']:16.2f}")  # fmt: skip
    print(f"at end: {load_line()}")


if __name__ == "__main__":
    main()
