"""Training throughput of one GRPO step on the embedded model: agentgym's trainer (full
fine-tune and LoRA) against TRL's `GRPOTrainer` driven by a `rollout_func` that returns the
same multi-turn trajectories (env tokens masked with `env_mask`).

One batch of GuessNumber-16 trajectories is collected once with the embedded model and
saved; every variant then runs in its own process (so that peak RSS is its own), loads the
model, and times one update on that batch. Tokens/s counts every token of every trained
sequence (prompt, generated and env tokens: all go through forward and backward).
Every variant uses one torch thread (on shared cores two oversubscribed threads are ~3x
slower, which would measure the neighbours rather than the trainers).

    python bench/train.py            # 4 tasks x 8 samples, horizon 4
    python bench/train.py --quick    # 2 tasks x 4 samples, horizon 3

Asynchronous rollouts (`async_steps: 1`) against the synchronous loop: whole training runs
on an env whose every step waits 200 ms (as a browser or a remote tool does), the two
arms alternating; the wall time per step, its ratio, and the ideal ratio from the
synchronous run's own rollout and update times, (rollout + update) / max(rollout, update):

    python bench/train.py --async [--steps 6] [--repeats 2] [--sleep 0.2] [--new-tokens 12]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from goals import goal, load_line

import agentgym
from agentgym import Outcome, Task, TextEnv


class SlowCoin(TextEnv):
    """Every step waits `sleep_s` (I/O, as a browser's); a reply whose characters sum to a
    multiple of 3 wins (about 1 in 3: GRPO groups carry signal)."""

    def __init__(self, sleep_s: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.sleep_s = sleep_s

    def make_tasks(self, split):
        return [Task(f"{split}-{i}", f"Coin {i}: say something.", split) for i in range(16)]

    def setup(self, task):
        return task.instruction

    def transition(self, action):
        time.sleep(self.sleep_s)
        if sum(map(ord, action)) % 3 == 0:
            return Outcome("Yes!", reward=1.0, terminated=True, success=True)
        return Outcome("No, say something else.")


agentgym.register("SlowCoin-bench-v0", SlowCoin)

BASE = [
    "env.id=agentgym/GuessNumber-16-v0",
    "env.kwargs={guess_tool: false}",
    "sampling.max_new_tokens=12",
    "sampling.stop=['</answer>']",
    "optim.micro_batch=8",
    "optim.lr=0.00001",
    "grpo.mask_over_turn=false",
    "tensorboard=false",
    "progress=false",
    "save_final=false",
    "eval.at_start=false",
    "eval.at_end=false",
    "threads=1",
]


def build(model: str, out: Path, *settings: str):
    """An agentgym trainer on the bench's settings (BASE) for `model`, writing to `out`."""
    from agentgym.trainers import build_trainer
    from agentgym.trainers.config import load_train_config

    return build_trainer(load_train_config(None, [*BASE, f"policy.model={model}", *settings, f"output_dir={out}"]))


def collect(path: Path, tasks: int, samples: int, horizon: int, model: str) -> None:
    from agentgym.trajectory import save_trajectories

    trainer = build(model, path.parent / "collect", f"tasks_per_step={tasks}", f"samples_per_task={samples}")
    trajs, stats = trainer.collect(0, horizon)
    # The untrained model earns no reward, and all-zero groups cost agentgym nothing (zero
    # advantage, no KL: the rows are skipped). Alternating rewards make every sequence carry
    # gradient in both trainers, so both do the full work.
    for i, t in enumerate(trajs):
        t.reward = float(i % 2)
    save_trajectories(trajs, path)
    print(f"collected {len(trajs)} trajectories ({sum(t.total_tokens for t in trajs)} tokens) in {stats.seconds:.1f} s")


def ours(path: Path, lora: bool, samples: int, model: str) -> dict:
    from agentgym.trajectory import load_trajectories

    trajs = load_trajectories(path)
    trainer = build(model, path.parent / "ours", f"samples_per_task={samples}", f"lora.enabled={str(lora).lower()}")
    trainer.model.train()
    t0 = time.perf_counter()
    metrics = trainer.update(trajs, max(t.horizon for t in trajs))
    seconds = time.perf_counter() - t0
    tokens = sum(t.total_tokens for t in trajs)
    return {"seconds": seconds, "tokens": tokens, "loss": metrics["loss"]}


def trl(path: Path, lora: bool, samples: int, model_name: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from agentgym.policy import load_model
    from agentgym.trajectory import load_trajectories

    torch.set_num_threads(1)  # as `threads=1` does for agentgym's variants
    trajs = load_trajectories(path)
    groups = [trajs[i : i + samples] for i in range(0, len(trajs), samples)]
    model, tok = load_model(model_name, dtype="float32", device="cpu")

    def rollout_func(prompts: list, trainer: object) -> dict:
        out: dict = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [], "reward": []}
        # TRL passes either each prompt once (then G completions each) or G times (then one each).
        seen: dict[str, int] = {}
        picked = []
        for p in prompts:
            group = groups[int(p.split()[-1])]
            if len(prompts) == len(trajs):
                picked.append(group[seen.setdefault(p, 0)])
                seen[p] += 1
            else:
                picked.extend(group)
        for t in picked:
            seg = t.segments[0]
            out["prompt_ids"].append(seg.prompt_ids)
            out["completion_ids"].append(seg.completion_ids)
            out["logprobs"].append(seg.logprobs)
            out["env_mask"].append(seg.loss_mask)
            out["reward"].append(t.reward)
        return out

    def reward(completions: list, reward: list, **_: object) -> list[float]:
        return reward

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.seconds = time.perf_counter() - self.t0

    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=16,
            lora_alpha=32,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        )
    timer = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp,
            per_device_train_batch_size=len(trajs),
            num_generations=samples,
            gradient_accumulation_steps=1,
            max_steps=1,
            learning_rate=1e-5,
            beta=0.0,
            loss_type="dapo",
            epsilon=0.2,
            epsilon_high=0.28,
            max_completion_length=max(len(t.segments[0].completion_ids) for t in trajs),
            bf16=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            gradient_checkpointing=False,
            disable_tqdm=True,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=args,
            train_dataset=Dataset.from_list([{"prompt": f"task {i}"} for i in range(len(groups))]),
            processing_class=tok,
            rollout_func=rollout_func,
            peft_config=peft_config,
            callbacks=[timer],
        )
        torch.manual_seed(0)
        trainer.train()
    return {"seconds": timer.seconds, "tokens": sum(t.total_tokens for t in trajs)}


def run_variant(name: str, path: Path, samples: int, model: str) -> dict:
    """One variant in a fresh process: its own peak RSS."""
    cmd = [
        sys.executable,
        __file__,
        "--variant",
        name,
        "--data",
        str(path),
        "--samples",
        str(samples),
        "--model",
        model,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"variant {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def async_gain(model: str, steps: int, repeats: int, sleep_s: float, new_tokens: int = 12) -> None:
    """Seconds per training step, synchronous vs async_steps=1, arms alternating."""
    settings = [
        "env.id=agentgym/SlowCoin-bench-v0",
        f"env.kwargs={{sleep_s: {sleep_s}}}",
        f"sampling.max_new_tokens={new_tokens}",
        "curriculum.start=3",
        "tasks_per_step=2",
        "samples_per_task=4",
        "rollout.max_concurrent=8",
        "optim.micro_batch=8",
        "optim.lr=0.00001",
        "tensorboard=false",
        "progress=false",
        "save_final=false",
        "eval.at_start=false",
        "eval.at_end=false",
        "checkpoint_every=0",
        "threads=1",
        f"steps={steps}",
        f"policy.model={model}",
    ]
    from agentgym.trainers import build_trainer
    from agentgym.trainers.config import load_train_config

    per_step: dict[int, list[float]] = {0: [], 1: []}
    parts: dict[str, list[float]] = {"rollout": [], "update": []}
    staleness: list[float] = []
    with tempfile.TemporaryDirectory(prefix="agentgym-bench-async-") as tmp:
        for rep in range(repeats):
            for mode in (0, 1):
                out = Path(tmp) / f"{mode}-{rep}"
                cfg = load_train_config(None, [*settings, f"async_steps={mode}", f"output_dir={out}"])
                with build_trainer(cfg) as trainer:
                    trainer.rollout_pool()  # env workers up before the clock starts
                    t0 = time.perf_counter()
                    trainer.train()
                    wall = time.perf_counter() - t0
                rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
                per_step[mode].append(wall / steps)
                if mode == 0:
                    parts["rollout"] += [r["time_rollout_s"] for r in rows]
                    parts["update"] += [r["time_update_s"] for r in rows]
                else:
                    staleness += [r["policy_staleness"] for r in rows]
                print(f"run {rep + 1}/{repeats} async_steps={mode}: {wall / steps:.2f} s/step", flush=True)
    rollout, update = (sum(v) / len(v) for v in (parts["rollout"], parts["update"]))
    sync, asyn = (min(per_step[m]) for m in (0, 1))
    print(f"\nGRPO on SlowCoin (every env step waits {sleep_s * 1000:.0f} ms), {model}, 2 tasks x 4 samples, "
          f"horizon 3, {new_tokens} new tokens a turn, {steps} steps, best of {repeats} runs an arm, CPU, "
          "1 torch thread")  # fmt: skip
    print(f"synchronous: {sync:.2f} s/step (rollouts {rollout:.2f} s, update {update:.2f} s)")
    print(f"async_steps=1: {asyn:.2f} s/step; policy staleness at most {max(staleness):.0f}")
    ideal = (rollout + update) / max(rollout, update)
    print(f"ideal speed-up from the synchronous parts (rollout + update) / max: {ideal:.2f}x")
    print(goal("async_steps=1 speed-up over synchronous, wall time per step", sync / asyn, 1.2, unit="x"))
    print(load_line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 tasks x 4 samples at horizon 3")
    parser.add_argument("--model", default="smollm2-135m", help="model to train (default: the embedded one)")
    parser.add_argument("--async", dest="asynchronous", action="store_true", help="async_steps=1 vs synchronous")
    parser.add_argument("--steps", type=int, default=6, help="--async: training steps a run")
    parser.add_argument("--repeats", type=int, default=2, help="--async: runs an arm (the best counts)")
    parser.add_argument("--sleep", type=float, default=0.2, help="--async: seconds every env step waits")
    parser.add_argument("--new-tokens", type=int, default=12, help="--async: most tokens a turn")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.asynchronous:
        async_gain(args.model, args.steps, args.repeats, args.sleep, args.new_tokens)
        return
    if args.variant:
        fn = {"ours-full": (ours, False), "ours-lora": (ours, True), "trl-full": (trl, False), "trl-lora": (trl, True)}
        func, lora = fn[args.variant]
        result = func(Path(args.data), lora, args.samples, args.model)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    tasks, samples, horizon = (2, 4, 3) if args.quick else (4, 8, 4)
    with tempfile.TemporaryDirectory(prefix="agentgym-bench-") as tmp:
        path = Path(tmp) / "batch.jsonl"
        collect(path, tasks, samples, horizon, args.model)
        results = {
            name: run_variant(name, path, samples, args.model)
            for name in ("ours-full", "trl-full", "ours-lora", "trl-lora")
        }
    print(f"\none GRPO step, {args.model}, {tasks} tasks x {samples} samples, horizon {horizon}, CPU")
    print(f"{'variant':<10} {'seconds':>8} {'tokens/s':>9} {'peak RSS MB':>12}")
    for name, r in results.items():
        print(f"{name:<10} {r['seconds']:>8.2f} {r['tokens'] / r['seconds']:>9.0f} {r['peak_rss_mb']:>12.0f}")
    for kind in ("full", "lora"):
        a, b = results[f"ours-{kind}"], results[f"trl-{kind}"]
        print(goal(f"{kind}: agentgym / TRL tokens/s", b["seconds"] / a["seconds"], 1.2, unit="x"))
        print(goal(f"{kind}: agentgym / TRL peak RSS", a["peak_rss_mb"] / b["peak_rss_mb"], 1.0, at_least=False))
    print(load_line())


if __name__ == "__main__":
    main()
