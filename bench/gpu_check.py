"""The prepared GPU check (run by bench/gpu_check.sh; `--cpu` is its smoke mode, in the suite).

Each part writes its figures to OUT as it finishes (OUT/figures.jsonl, one JSON object a
line), so a run cut by its time limit still reports what it measured:

1. the memory plan's predicted step memory against the measured peak of one training step
   (random-initialised models from the shipped configs: Qwen2.5-1.5B LoRA and full,
   Qwen2.5-7B LoRA; fp32 weights with bf16 autocast, as the trainer runs them; rows of
   `--tokens` tokens), and that step's tokens/s;
2. HF generation tokens/s at batch 64 on a bf16 copy;
3. a few GRPO steps of the training loop on GuessNumber, end to end, on the device.

    bash bench/gpu_check.sh OUT        # on a GPU machine
    bash bench/gpu_check.sh --cpu OUT  # the smoke mode: the tiny model, small sizes, on the CPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

GPU_VARIANTS = [("Qwen2.5-1.5B-Instruct", True), ("Qwen2.5-1.5B-Instruct", False), ("Qwen2.5-7B-Instruct", True)]


def record(out: Path, **fields) -> None:
    with open(out / "figures.jsonl", "a") as fh:
        fh.write(json.dumps(fields) + "\n")
    print(json.dumps(fields), flush=True)


def _peak_reset(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _memory(device: str, peak: bool) -> float:
    import torch

    if device == "cuda":
        return float(torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated())
    from memory_plan import _status  # bench/memory_plan.py: the process's resident and peak memory

    return float(_status("VmHWM" if peak else "VmRSS"))


def step_memory(name: str, lora: bool, device: str, rows: int, tokens: int) -> dict:
    """One training step (token log-probs of rows, backward, AdamW) on a random model of
    the shipped config `name`: measured memory beyond the loaded weights, and the plan's."""
    import torch
    from agentgym.trainers.common import autocast
    from agentgym.trainers.config import load_train_config
    from agentgym.trainers.memory import memory_plan, model_config
    from transformers import AutoConfig, AutoModelForCausalLM

    config = model_config(name)
    _peak_reset(device)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
    if lora:
        from peft import LoraConfig, get_peft_model

        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets))
    model.config.use_cache = False
    model.train()
    loaded = _memory(device, peak=False)
    _peak_reset(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6)
    ids = torch.randint(0, config["vocab_size"], (rows, tokens), device=device)
    t0 = time.perf_counter()
    with autocast(torch.device(device)):
        logits = model(input_ids=ids).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = -logp.mean()
    loss.backward()
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = _memory(device, peak=True)
    model_name = "tiny-random" if name == "tiny-random" else f"Qwen/{name}"
    cfg = load_train_config(None, [f"policy.model={model_name}", f"lora.enabled={str(lora).lower()}",
                                   f"optim.micro_batch={rows}", f"rollout.max_context_tokens={tokens}",
                                   f"optim.logprob_chunk={tokens}"])  # fmt: skip
    plan = memory_plan(cfg, device=device)
    predicted = sum(plan.terms.get(k, 0.0) for k in ("gradients", "AdamW moments")) + plan.activations
    measured = peak - loaded  # the step's own: the peak beyond the loaded weights
    return {"model": name, "lora": lora, "rows": rows, "tokens": tokens, "weights_gb": loaded / 1e9,
            "step_measured_gb": measured / 1e9, "step_planned_gb": predicted / 1e9,
            "measured_over_planned": measured / predicted, "step_tokens_per_s": rows * tokens / seconds}  # fmt: skip


def generation(name: str, device: str, batch: int, new_tokens: int) -> dict:
    """HF `generate` tokens/s at `batch` on a bf16 (GPU) or fp32 (CPU) random model."""
    import torch
    from agentgym.trainers.memory import model_config
    from transformers import AutoConfig, AutoModelForCausalLM

    config = model_config(name)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=dtype).eval()
    ids = torch.randint(0, config["vocab_size"], (batch, 64), device=device)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=4, do_sample=True, pad_token_id=0)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, pad_token_id=0)
        if device == "cuda":
            torch.cuda.synchronize()
    generated = (out.shape[1] - ids.shape[1]) * batch
    return {"model": name, "batch": batch, "new_tokens": new_tokens,
            "generate_tokens_per_s": generated / (time.perf_counter() - t0)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="the smoke mode: the tiny model on the CPU")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tokens", type=int, default=None)
    args = p.parse_args()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.cpu else "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    record(args.out, part="device", device=device, name=name, torch=torch.__version__)
    variants = [("tiny-random", False), ("tiny-random", True)] if args.cpu else GPU_VARIANTS
    tokens = args.tokens or (128 if args.cpu else 2048)
    for model, lora in variants:
        try:
            record(args.out, part="step", **step_memory(model, lora, device, rows=2 if args.cpu else 4, tokens=tokens))
        except Exception as exc:  # one variant that fails (out of memory) does not stop the others
            record(args.out, part="step", model=model, lora=lora, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        if device == "cuda":
            torch.cuda.empty_cache()
    gen_model = "tiny-random" if args.cpu else "Qwen2.5-1.5B-Instruct"
    record(args.out, part="generate", **generation(gen_model, device, batch=8 if args.cpu else 64,
                                                   new_tokens=16 if args.cpu else 128))  # fmt: skip
    # The training loop end to end on the device: GRPO on GuessNumber with the tiny model,
    # synchronous and with asynchronous rollouts (on CUDA both generate from the bf16 copy).
    for mode in (0, 1):
        cmd = [sys.executable, "-m", "agentgym.cli", "train", "configs/quickstart.yaml", "policy.model=tiny-random",
               f"policy.device={device}", "steps=2", "tasks_per_step=2", "samples_per_task=2",
               "warm_start.enabled=false", "eval.at_start=false", "eval.at_end=false", "eval.every=0",
               "progress=false", "tensorboard=false", "save_final=false", f"async_steps={mode}",
               f"output_dir={args.out / f'loop-async{mode}'}", "--force"]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        record(args.out, part="loop", async_steps=mode, returncode=done.returncode,
               seconds=round(time.perf_counter() - t0, 1), tail=(done.stdout + done.stderr)[-600:])  # fmt: skip


if __name__ == "__main__":
    main()
