"""vLLM in the training process: fast generation on GPUs, weights synced from the trained model.

The engine runs in this process (vLLM's `external_launcher` executor, as TRL's colocate
mode does), so there is no server to start and weight sync is a copy between tensors
on the same GPU. After the trainer changes the weights it calls `clear_cache()`; the
next `generate` first loads the current weights into the engine (a LoRA adapter is
merged for the copy and unmerged after) and resets vLLM's prefix cache.

vLLM needs a CUDA GPU: `pip install agentgym[vllm]` on a GPU machine.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from agentgym.policy.base import Generation, Policy, SamplingParams

__all__ = ["VLLMPolicy", "vllm_weights"]


def vllm_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """The trained model's weights under the names vLLM loads them by. A peft model's
    adapter must be merged while these are read (see `VLLMPolicy.sync_weights`)."""
    peft = hasattr(model, "merge_adapter") and hasattr(model, "prefix")
    for name, param in model.named_parameters():
        if peft:
            if model.prefix in name or "original_module" in name:
                continue  # adapter matrices are merged into the base weights
            name = name.removeprefix("base_model.model.").replace(".base_layer", "")
            name = name.replace("modules_to_save.default.", "")
        yield name, param.data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMPolicy(Policy):
    """Generation with an in-process vLLM engine.

    Args:
        model: what vLLM loads (a folder or hub id; embedded names are resolved first).
        tokenizer: the tokenizer the rollout renders prompts with.
        trained: the model being trained; when given, its weights are copied into the
            engine before the first generation after each `clear_cache()`.
        gpu_memory_utilization: the share of GPU memory vLLM may take (the trainer shares it).
        max_model_len: the longest prompt + completion.
        dtype: vLLM's dtype ("auto": the checkpoint's, bf16 for most).
        seed: the engine's seed.
        llm_kwargs: more `vllm.LLM` arguments.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        tokenizer: Any,
        trained: Any = None,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        **llm_kwargs: Any,
    ):
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError(
                "policy.backend=vllm needs vLLM and a CUDA GPU: pip install 'agentgym[vllm]' (or serve the model "
                "with `vllm serve MODEL` and use policy.backend=openai with policy.base_url)"
            ) from None
        from agentgym.policy.models import resolve_model

        # The external launcher keeps the engine in this process; it reads torch.distributed's
        # variables, which a single process started without torchrun does not have.
        for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
            os.environ.setdefault(key, value)
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        self.tokenizer = tokenizer
        self.trained = trained
        self.stale = trained is not None
        self.syncs = 0
        self.llm = LLM(
            model=resolve_model(model),
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            seed=seed,
            enable_prefix_caching=True,
            distributed_executor_backend="external_launcher",
            # After temperature, top-k and top-p: the distribution sampled from, as HFPolicy
            # records it (with top_p = 1 and top_k = 0, what the trainer recomputes).
            logprobs_mode="processed_logprobs",
            # Sampling is `SamplingParams` alone: never the defaults of the model's
            # generation_config.json (Qwen2.5's repetition_penalty 1.05).
            generation_config="vllm",
            **llm_kwargs,
        )

    def clear_cache(self) -> None:
        """The trained weights changed: sync them before the next generation."""
        self.stale = self.trained is not None

    @torch.no_grad()
    def sync_weights(self) -> None:
        """Copy the trained model's current weights into the engine."""
        model = self.trained
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        peft = hasattr(model, "merge_adapter")
        if peft:
            model.merge_adapter()
        try:
            runner.model.load_weights(list(vllm_weights(model)))
        finally:
            if peft:
                model.unmerge_adapter()
        self.llm.reset_prefix_cache()
        self.stale = False
        self.syncs += 1

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        messages: Sequence[list[dict[str, Any]]] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams as VSamplingParams

        if self.stale:
            self.sync_weights()
        requests = [
            VSamplingParams(
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k if params.top_k > 0 else -1,
                min_p=0.0,
                repetition_penalty=1.0,
                presence_penalty=0.0,
                frequency_penalty=0.0,
                stop=list(params.stop) or None,
                include_stop_str_in_output=True,
                logprobs=0,  # the sampled token's log-prob only
                seed=None if params.seed is None else params.seed + i,
            )
            for i in range(len(prompts))
        ]
        outs = self.llm.generate(
            [{"prompt_token_ids": list(p)} for p in prompts], sampling_params=requests, use_tqdm=False
        )
        gens = []
        for out in outs:
            c = out.outputs[0]
            ids = list(c.token_ids)
            logprobs = []
            for tok, lp in zip(ids, c.logprobs or [], strict=False):
                value = lp[tok].logprob
                logprobs.append(0.0 if math.isnan(value) else float(value))
            logprobs += [0.0] * (len(ids) - len(logprobs))
            gens.append(Generation(ids, logprobs, c.text, "length" if c.finish_reason == "length" else "stop"))
        return gens

    def close(self) -> None:
        self.llm = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
