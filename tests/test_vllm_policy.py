"""The vLLM backend against a stand-in `vllm` module (vLLM needs a CUDA GPU; none here).

The stand-in has the parts of vLLM's API the backend uses (`LLM.generate` on token-id
prompts with per-request `SamplingParams`, `RequestOutput.outputs[0]` with token ids,
text, finish reason and per-token log-prob dicts, `reset_prefix_cache`, and the
driver worker's `model.load_weights`) over a transformers model that loads weights by
the checkpoint names, as vLLM's Llama does. Its sampler applies what vLLM's does
(repetition penalty, temperature, top-k, top-p) and returns processed log-probs; a
sampling field a request leaves unset takes the model's generation_config default, as
vLLM's server does, unless the engine was built with `generation_config="vllm"`
(vLLM's offline `LLM.generate` applies those defaults only without sampling params; the
stand-in is the stricter one). It checks what is ours: the request mapping, the output
conversion, that sampling is `SamplingParams` alone, and that the engine runs the
*trained* weights after each update (LoRA merged for the copy, unmerged after).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch

from agentgym.policy.base import SamplingParams
from agentgym.policy.models import build_tiny_model


@dataclass
class _Logprob:
    logprob: float


@dataclass
class _Completion:
    token_ids: list[int]
    text: str
    finish_reason: str
    logprobs: list[dict[int, _Logprob]] = field(default_factory=list)


@dataclass
class _RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[_Completion]


class _SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class _Model:
    """vLLM's model as the driver worker holds it: `load_weights((name, tensor), ...)` by
    checkpoint names; an unknown name is an error, as in vLLM."""

    def __init__(self, hf):
        self.hf = hf

    def load_weights(self, weights):
        params = dict(self.hf.named_parameters())
        for name, tensor in weights:
            if name not in params:
                raise KeyError(f"vLLM has no weight named {name}")
            params[name].data.copy_(tensor)


class _LLM:
    instances: ClassVar[list[_LLM]] = []

    def __init__(self, model, **kwargs):
        self.kwargs = kwargs
        self.hf = _LLM.factory(model)
        self.tokenizer = _LLM.tokenizer
        runner = types.SimpleNamespace(model=_Model(self.hf))
        worker = types.SimpleNamespace(model_runner=runner)
        self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(driver_worker=worker))
        self.prefix_resets = 0
        _LLM.instances.append(self)

    def reset_prefix_cache(self):
        self.prefix_resets += 1

    def _setting(self, sp, name, neutral):
        """A request's sampling field; one the request leaves unset takes the model's
        generation_config default, as vLLM's server does, unless the engine was built
        with generation_config="vllm"."""
        if hasattr(sp, name):
            return getattr(sp, name)
        if self.kwargs.get("generation_config") != "vllm":
            value = getattr(self.hf.generation_config, name, None)
            if value is not None:
                return value
        return neutral

    def _processed(self, logits, seen, sp):
        """vLLM's sampler: repetition penalty, temperature, top-k, top-p; the processed
        log-probs are the log-softmax of the result."""
        penalty = self._setting(sp, "repetition_penalty", 1.0)
        if penalty != 1.0:
            idx = torch.tensor(sorted(set(seen)))
            picked = logits[idx]
            logits[idx] = torch.where(picked > 0, picked / penalty, picked * penalty)
        if sp.temperature > 0:
            logits = logits / sp.temperature
        top_k = self._setting(sp, "top_k", -1)
        if top_k and top_k > 0:
            logits = logits.masked_fill(logits < logits.topk(top_k).values[-1], float("-inf"))
        top_p = self._setting(sp, "top_p", 1.0)
        if top_p < 1.0:
            order = logits.sort(descending=True)
            probs = order.values.softmax(-1)
            drop = torch.zeros_like(logits, dtype=torch.bool)
            drop[order.indices] = probs.cumsum(-1) - probs >= top_p
            logits = logits.masked_fill(drop, float("-inf"))
        return torch.log_softmax(logits, -1)

    @torch.no_grad()
    def generate(self, prompts, sampling_params, use_tqdm=True):
        outs = []
        for prompt, sp in zip(prompts, sampling_params, strict=True):
            ids = list(prompt["prompt_token_ids"])
            gen, lps = [], []
            eos = self.tokenizer.eos_token_id
            finish = "length"
            for _ in range(sp.max_tokens):
                logits = self.hf(torch.tensor([ids + gen])).logits[0, -1].float()
                logp = self._processed(logits, ids + gen, sp)
                tok = int(logp.argmax())
                gen.append(tok)
                lps.append({tok: _Logprob(float(logp[tok]))})
                text = self.tokenizer.decode(gen, skip_special_tokens=True)
                if tok == eos or any(s in text for s in sp.stop or []):
                    finish = "stop"
                    break
            text = self.tokenizer.decode(gen, skip_special_tokens=True)
            outs.append(_RequestOutput(ids, [_Completion(gen, text, finish, lps)]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch, smol_tokenizer):
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = _LLM, _SamplingParams
    _LLM.instances = []
    _LLM.tokenizer = smol_tokenizer
    _LLM.factory = lambda path: build_tiny_model(smol_tokenizer, seed=1).eval()
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def _prompt(tok, text="Guess a number."):
    rendered = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
    return tok(rendered, add_special_tokens=False).input_ids


def test_generations_carry_ids_logprobs_text_and_finish_reason(fake_vllm, smol_tokenizer):
    from agentgym.policy.vllm_policy import VLLMPolicy

    policy = VLLMPolicy("some/model", smol_tokenizer)
    prompts = [_prompt(smol_tokenizer), _prompt(smol_tokenizer, "Another one.")]
    gens = policy.generate(prompts, SamplingParams(max_new_tokens=5, temperature=0.0, stop=("</answer>",), seed=3))
    assert len(gens) == 2
    for g in gens:
        assert len(g.token_ids) == len(g.logprobs) > 0
        assert all(lp <= 0 for lp in g.logprobs)
        assert g.finish_reason in ("stop", "length")
        assert g.text == smol_tokenizer.decode(g.token_ids, skip_special_tokens=True)
    engine = _LLM.instances[0]
    assert engine.kwargs["distributed_executor_backend"] == "external_launcher"
    assert engine.kwargs["logprobs_mode"] == "processed_logprobs"


def test_engine_logprobs_equal_a_training_forward_whatever_the_models_generation_config(fake_vllm, smol_tokenizer):
    """Against the stand-in (no GPU here): the engine is told to ignore the model's
    generation_config (Qwen2.5's repetition penalty) and each request sets every sampling
    field, so its processed log-probs are the trainer's."""
    from agentgym.policy.vllm_policy import VLLMPolicy
    from tests.test_hf_policy import QWEN_DEFAULTS, training_forward

    trained = build_tiny_model(smol_tokenizer, seed=1, init_std=0.2, tied=False).eval()

    def with_qwen_defaults(path):
        model = build_tiny_model(smol_tokenizer, seed=1, init_std=0.2, tied=False).eval()
        for key, value in QWEN_DEFAULTS.items():
            setattr(model.generation_config, key, value)
        return model

    fake_vllm.LLM.factory = with_qwen_defaults
    policy = VLLMPolicy("some/model", smol_tokenizer, trained=trained)
    prompts = [_prompt(smol_tokenizer), _prompt(smol_tokenizer, "Another one, please.")]
    for temperature in (1.0, 0.7):
        for prompt, gen in zip(prompts, policy.generate(prompts, SamplingParams(8, temperature)), strict=True):
            want = training_forward(trained, prompt, gen.token_ids, temperature)
            assert gen.logprobs == pytest.approx(want, abs=1e-4)


def _bump(model):
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))


def test_the_engine_runs_the_trained_full_weights_after_each_update(fake_vllm, smol_tokenizer):
    from agentgym.policy.vllm_policy import VLLMPolicy

    trained = build_tiny_model(smol_tokenizer, seed=2)
    policy = VLLMPolicy("some/model", smol_tokenizer, trained=trained)
    engine = _LLM.instances[0]
    params = SamplingParams(max_new_tokens=2, temperature=0.0)
    policy.generate([_prompt(smol_tokenizer)], params)  # the first generation syncs the trained weights
    assert policy.syncs == 1 and engine.prefix_resets == 1
    for (name, a), (_, b) in zip(trained.state_dict().items(), engine.hf.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    policy.generate([_prompt(smol_tokenizer)], params)
    assert policy.syncs == 1  # nothing changed: no copy
    _bump(trained)
    policy.clear_cache()  # what the trainer calls after an update
    policy.clear_cache()
    policy.generate([_prompt(smol_tokenizer)], params)
    assert policy.syncs == 2
    assert all(torch.equal(a, b) for a, b in zip(trained.parameters(), engine.hf.parameters(), strict=True))


def test_a_lora_adapter_is_merged_into_the_engine_and_left_unmerged_in_training(fake_vllm, smol_tokenizer):
    from peft import LoraConfig, get_peft_model

    from agentgym.policy.vllm_policy import VLLMPolicy

    base = build_tiny_model(smol_tokenizer, seed=1)
    trained = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    _bump(trained)  # non-zero adapters
    ids = torch.tensor([_prompt(smol_tokenizer)])
    with torch.no_grad():
        before = trained(ids).logits
    policy = VLLMPolicy("some/model", smol_tokenizer, trained=trained)
    policy.generate([ids[0].tolist()], SamplingParams(max_new_tokens=2, temperature=0.0))
    engine = _LLM.instances[0]
    with torch.no_grad():
        after = trained(ids).logits
        served = engine.hf(ids).logits
    torch.testing.assert_close(after, before)  # the adapter is unmerged again
    torch.testing.assert_close(served, before, atol=1e-4, rtol=1e-4)  # the engine serves base + adapter


def test_without_vllm_the_error_says_how_to_get_it(monkeypatch, smol_tokenizer):
    monkeypatch.setitem(sys.modules, "vllm", None)
    from agentgym.policy.vllm_policy import VLLMPolicy

    with pytest.raises(RuntimeError, match="pip install"):
        VLLMPolicy("some/model", smol_tokenizer)


def test_the_trainer_generates_with_the_engine_and_syncs_it_after_each_update(fake_vllm, tmp_path):
    from agentgym.trainers import build_trainer

    from tests.test_train_support import tiny_config

    trainer = build_trainer(tiny_config(tmp_path, "policy.backend=vllm", "steps=2"))
    policy = trainer.policy
    assert type(policy).__name__ == "VLLMPolicy" and policy.trained is trainer.model
    trainer.train()
    engine = _LLM.instances[0]
    assert policy.syncs == 2  # before each step's rollouts: the initial weights, then the updated ones
    assert engine.prefix_resets == 2
    # The last update came after the last sync: the engine catches up before its next generation.
    assert policy.stale
    policy.generate([[1, 2, 3]], SamplingParams(max_new_tokens=1, temperature=0.0))
    for a, b in zip(trainer.model.parameters(), engine.hf.parameters(), strict=True):
        assert torch.equal(a, b)
