"""The memory plan of a training run: what each device holds, estimated from the model's
shape and the config before anything loads (`agentgym train CONFIG --dry-run`).

Terms, per device (data parallel: every rank holds a whole copy of the model; with
`hardware.fsdp`, the weights, gradients, AdamW moments and KL reference are sharded over
the `hardware.gpus` ranks, each holds 1/N of them plus the two layers being gathered):

- weights: every parameter at the training dtype (`policy.dtype`; "auto" is fp32 on every
  device, with the forward under bf16 autocast on a GPU); with LoRA, the adapter's besides;
- gradients and AdamW's two moments: of the trained parameters (all of them, or the adapter);
- the KL reference when `kl_coef > 0`: a frozen copy of the model (full fine-tuning; bf16
  on a GPU) or of the adapter (LoRA; the base is shared);
- the rollout weights: a copy of the model the rollouts generate with (trainers/sampler.py),
  bf16 on a GPU (`policy.rollout_dtype`), and in any dtype with `async_steps: 1`; none on
  the CPU otherwise (generation reads the trained weights);
- activations of one micro-batch of `optim.micro_batch` rows of `rollout.max_context_tokens`
  tokens, kept for the backward pass: per token and layer ~(10 h + 4 i) values (attention's
  inputs and outputs with SDPA/flash, no T x T scores; SwiGLU's three projections and the
  activation), or, with gradient checkpointing, the h values of each layer's input plus one
  layer's whole; plus the log-softmax chunk (`optim.logprob_chunk` positions x the
  vocabulary, fp32, with its gradient; sharded, the whole model runs its forward, so the
  micro-batch's logits over the vocabulary, with their gradient);
- the rollout KV cache: `rollout.max_concurrent` sequences of `max_context_tokens` tokens,
  2 x layers x key-value heads x head dim each (hf backend; the model generates on the
  device it trains on);
- the vLLM engine: `policy.gpu_memory_utilization` of the device (vllm backend).

The shapes come from the model's config.json: the converted embedded model, a local folder,
the Hugging Face cache, or the copies shipped in agentgym/policy/configs (Qwen2.5 1.5B, 3B,
7B; SmolLM2-135M) when the hub cannot be reached. The parameter count is exact for the
Llama/Qwen2 family (tests compare it with transformers' own models on the meta device).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MemoryPlan", "ModelShape", "memory_plan", "model_config"]

GB = 1e9


def _shipped_dir() -> Path:
    """agentgym/policy/configs, found through the installed package (works installed or editable)."""
    import agentgym.policy

    return Path(agentgym.policy.__file__).resolve().parent / "configs"


def model_config(name: str) -> dict[str, Any]:
    """The config.json of a model name, from this machine's files only (never the network)."""
    from agentgym.policy.models import EMBEDDED, TINY_PREFIX, cache_dir

    shipped = _shipped_dir()
    if name.startswith(TINY_PREFIX):
        return _tiny_config()
    if name in EMBEDDED:
        converted = cache_dir() / "models" / EMBEDDED[name].folder / "config.json"
        path = converted if converted.exists() else shipped / f"{EMBEDDED[name].folder}.json"
        return json.loads(path.read_text())
    local = Path(name) / "config.json"
    if local.exists():
        return json.loads(local.read_text())
    try:  # the Hugging Face cache, offline
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(name, "config.json", local_files_only=True)).read_text())
    except Exception:  # not in the cache: a shipped copy, by the repository's name
        pass
    copy = shipped / f"{name.split('/')[-1]}.json"
    if copy.exists():
        return json.loads(copy.read_text())
    known = sorted(p.stem for p in shipped.glob("*.json"))
    raise FileNotFoundError(
        f"no config.json for {name!r} on this machine (not a folder, not in the Hugging Face cache); shipped: {known}"
    )


def _tiny_config() -> dict[str, Any]:
    """The shape `build_tiny_model` builds (2 layers, hidden 64) over SmolLM2's vocabulary."""
    return {
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 49152, "tie_word_embeddings": True,
    }  # fmt: skip


@dataclass(frozen=True)
class ModelShape:
    """What the memory plan needs of a decoder-only transformer (Llama, Qwen2, Mistral...)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool = False

    @classmethod
    def from_config(cls, c: dict[str, Any]) -> ModelShape:
        heads = int(c["num_attention_heads"])
        hidden = int(c["hidden_size"])
        return cls(
            hidden=hidden,
            intermediate=int(c["intermediate_size"]),
            layers=int(c["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(c.get("num_key_value_heads") or heads),
            head_dim=int(c.get("head_dim") or hidden // heads),
            vocab=int(c["vocab_size"]),
            tied=bool(c.get("tie_word_embeddings", False)),
            qkv_bias=bool(c.get("attention_bias", c.get("model_type") == "qwen2")),
        )

    def layer_parameters(self) -> int:
        h, d = self.hidden, self.head_dim
        q, kv = self.heads * d, self.kv_heads * d
        attn = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.qkv_bias else 0)
        mlp = 3 * h * self.intermediate
        return attn + mlp + 2 * h  # two RMSNorms

    def parameters(self) -> int:
        embed = self.vocab * self.hidden
        return embed + self.layers * self.layer_parameters() + self.hidden + (0 if self.tied else embed)

    def lora_parameters(self, r: int, targets: list[str]) -> int:
        h, i = self.hidden, self.intermediate
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        dims = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}  # fmt: skip
        return self.layers * sum(r * (a + b) for name, (a, b) in dims.items() if name in targets)


@dataclass
class MemoryPlan:
    """Bytes per device, by term; `total` with activations as the trainer runs them."""

    model: str
    device: str
    dtype_bytes: int
    terms: dict[str, float] = field(default_factory=dict)
    activations: float = 0.0
    activations_checkpointed: float = 0.0
    checkpointing: bool = False
    capacity: float | None = None  # the device's memory (bytes), when known
    activation_bytes: int = 4

    @property
    def total(self) -> float:
        acts = self.activations_checkpointed if self.checkpointing else self.activations
        return sum(self.terms.values()) + acts

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.total <= self.capacity

    def table(self) -> str:
        rows = [(k, v) for k, v in self.terms.items()]
        rows.append(("activations (no checkpointing)", self.activations))
        rows.append(("activations (gradient checkpointing)", self.activations_checkpointed))
        width = max(len(k) for k, _ in rows)
        lines = [f"memory plan of {self.model} on {self.device} ({self.dtype_bytes * 8}-bit weights, "
                 f"{self.activation_bytes * 8}-bit activations), per device:"]  # fmt: skip
        lines += [f"  {k:<{width}}  {v / GB:9.2f} GB" for k, v in rows]
        cap = f" of {self.capacity / GB:.1f} GB" if self.capacity else ""
        which = "with" if self.checkpointing else "without"
        lines.append(f"  {'total (' + which + ' checkpointing)':<{width}}  {self.total / GB:9.2f} GB{cap}")
        return "\n".join(lines)


def memory_plan(cfg: Any, device: str | None = None, capacity_gb: float | None = None) -> MemoryPlan:
    """The memory plan of a `TrainConfig` on `device` ("cpu", "cuda"; default: the config's
    or the hardware's), with the device's capacity when known."""
    hw = getattr(cfg, "hardware", None)
    gpus = hw.gpus if hw is not None else 0
    device = device or cfg.policy.device or ("cuda" if gpus else "cpu")
    gpu = device.startswith("cuda")
    # The trainer keeps "auto" weights in fp32 on every device (AdamW on bf16 weights loses
    # small updates) and runs the forward under bf16 autocast on a GPU (trainers/common.py).
    b = _dtype_bytes(cfg.policy.dtype, 4)
    ab = 2 if gpu else b  # activations
    shape = ModelShape.from_config(model_config(cfg.policy.model))
    params = shape.parameters()
    terms: dict[str, float] = {"weights": params * b}
    lora = cfg.lora.enabled
    trained = shape.lora_parameters(cfg.lora.r, list(cfg.lora.target_modules)) if lora else params
    ranks = max(gpus, 1) if getattr(hw, "fsdp", False) and not lora else 1  # FSDP shards over them
    if ranks > 1:
        terms = {f"weights (1/{ranks} shard)": params * b / ranks}
    if lora:
        terms["LoRA adapter"] = trained * b
    shard = f" (1/{ranks} shard)" if ranks > 1 else ""
    terms["gradients" + shard] = trained * b / ranks
    terms["AdamW moments" + shard] = 2 * trained * b / ranks
    algo = getattr(cfg, cfg.algo, None)
    if getattr(algo, "kl_coef", 0.0) > 0:
        # A copy of the adapter, or of the whole model (bf16 on a GPU: trainers/reference.py).
        terms["KL reference" + shard] = (trained * b if lora or not gpu else trained * 2) / ranks
    if ranks > 1:  # a layer gathered for its pass and the next one prefetched, in the activations' dtype
        terms["gathered layers (FSDP)"] = 2 * shape.layer_parameters() * ab
    gen_bytes = b  # of the weights that generate, and so of their KV cache
    if cfg.policy.backend == "hf":
        gen_bytes = _dtype_bytes(cfg.policy.rollout_dtype, 2 if gpu else b)  # "auto": bf16 on a GPU
        if gen_bytes != b or getattr(cfg, "async_steps", 0) or ranks > 1:
            terms["rollout weights (a copy)"] = (params + (trained if lora else 0)) * gen_bytes
    tokens = cfg.optim.micro_batch * cfg.rollout.max_context_tokens
    per_layer = tokens * (10 * shape.hidden + 4 * shape.intermediate) * ab
    logits = 3 * cfg.optim.micro_batch * min(cfg.optim.logprob_chunk, cfg.rollout.max_context_tokens) * shape.vocab * 4
    if ranks > 1:  # the whole model's forward: the logits of every position, and their gradient
        logits += 2 * tokens * shape.vocab * ab
    activations = shape.layers * per_layer + logits
    checkpointed = shape.layers * tokens * shape.hidden * ab + per_layer + logits
    if cfg.policy.backend == "hf":
        kv = cfg.rollout.max_concurrent * cfg.rollout.max_context_tokens * 2 * shape.layers * shape.kv_heads
        terms["rollout KV cache"] = kv * shape.head_dim * gen_bytes
    capacity = capacity_gb * GB if capacity_gb else None
    if capacity is None and gpu and hw is not None and hw.gpu_memory_gb:
        capacity = hw.gpu_memory_gb * GB
    if capacity is None:
        capacity = _detected_capacity(device)
    if cfg.policy.backend == "vllm" and capacity:
        terms["vLLM engine"] = cfg.policy.gpu_memory_utilization * capacity
    return MemoryPlan(
        cfg.policy.model, device, b, terms, activations, checkpointed,
        checkpointing=cfg.optim.gradient_checkpointing, capacity=capacity, activation_bytes=ab,
    )  # fmt: skip


def _dtype_bytes(name: str, auto: int) -> int:
    """Bytes per value of a config's dtype name; `auto` for "auto" (and names it does not know)."""
    return 2 if name in ("bfloat16", "float16") else 4 if name == "float32" else auto


def _detected_capacity(device: str) -> float | None:
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = int(device.split(":")[1]) if ":" in device else 0
            return float(torch.cuda.get_device_properties(index).total_memory)
        return None
    # RAM the run can have: MemAvailable counts the page cache the kernel gives back (free
    # memory alone is small on any machine that has read files).
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
