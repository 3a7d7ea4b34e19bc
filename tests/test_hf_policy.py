"""HFPolicy: batching, log-probs, finish reasons, stop strings, and prefix KV-cache reuse.

Most tests use a tiny random 2-layer Llama over SmolLM2's tokenizer; one checks cache
reuse on the real embedded SmolLM2-135M. The tiny model is not the `tiny-random` one:
that one ties its embeddings at a small init scale, so its greedy output repeats the
prompt's last token ("\n") whatever the context, and tests of batching or caching on it
could not fail. Untied at a larger scale (`init_std=0.2, tied=False`), its output is
varied and depends on the whole context (the keys/values a cache must get right).
"""

from __future__ import annotations

import pytest
import torch

from agentgym.policy import ModelNotFoundError, SamplingParams, load_tokenizer
from agentgym.policy.hf import HFPolicy
from agentgym.policy.kv_cache import PrefixKVCache
from agentgym.policy.models import build_tiny_model
from agentgym.rollout.prompting import ChatFormat

GREEDY = SamplingParams(max_new_tokens=8, temperature=0)


@pytest.fixture(scope="module")
def plain():
    tokenizer = load_tokenizer("tiny-random")
    model = build_tiny_model(tokenizer, seed=0, init_std=0.2, tied=False).eval()
    return HFPolicy(model, tokenizer, prefix_cache=False, batch_size=16)


@pytest.fixture
def cached(plain):
    """A policy with the prefix cache on, over the same model object as `plain`."""
    return HFPolicy(plain.model, plain.tokenizer, prefix_cache=True, batch_size=16)


def chat_prompts(tokenizer, n: int = 4) -> list[list[int]]:
    """Chat prompts of clearly different lengths, not sorted by length."""
    fmt = ChatFormat(tokenizer)
    sizes = [3, 0, 7, 1, 5, 2][:n]
    return [
        fmt.start(
            [
                {"role": "system", "content": "You play a guessing game. " * (1 + k)},
                {"role": "user", "content": f"Guess a number between 1 and {10 * (k + 1)}."},
            ]
        )
        for k in sizes
    ]


def forward_logprobs(policy, prompt, completion, temperature=1.0) -> list[float]:
    """log p(completion token) from one plain forward pass over prompt + completion."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = policy.model(ids).logits[0, len(prompt) - 1 : -1].float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(1, torch.tensor(completion).view(-1, 1)).squeeze(1).tolist()


def assert_same(got, want, tol=1e-4):
    for a, b in zip(got, want, strict=True):
        assert a.token_ids == b.token_ids
        assert a.text == b.text and a.finish_reason == b.finish_reason
        assert max((abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)), default=0.0) < tol


def printable_token_text(tokenizer, tokens: list[int]) -> str:
    """The text of the first token in `tokens` that makes a usable stop string."""
    for t in tokens[1:]:
        text = tokenizer.decode([t])
        if text.strip() and text.isprintable() and "\ufffd" not in text:
            return text.strip()
    raise AssertionError(f"no printable token in {tokens}")


# ---------------------------------------------------------------------- generation


def test_batched_left_padded_equals_one_at_a_time(plain):
    prompts = chat_prompts(plain.tokenizer)
    assert len({len(p) for p in prompts}) == len(prompts)
    batched = plain.generate(prompts, GREEDY)
    singles = [plain.generate([p], GREEDY)[0] for p in prompts]
    assert_same(batched, singles)
    assert all(len(g.token_ids) == len(g.logprobs) > 0 for g in batched)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_equal_forward_pass(plain, temperature):
    prompts = chat_prompts(plain.tokenizer, 3)
    params = SamplingParams(max_new_tokens=6, temperature=temperature, seed=3)
    for prompt, gen in zip(prompts, plain.generate(prompts, params), strict=True):
        want = forward_logprobs(plain, prompt, gen.token_ids, temperature or 1.0)
        assert gen.logprobs == pytest.approx(want, abs=1e-4)


def test_finish_reasons_eos_length_and_stop_string(plain):
    prompt = chat_prompts(plain.tokenizer, 1)[0]
    free = plain.generate([prompt], GREEDY)[0]
    assert free.finish_reason == "length" and len(free.token_ids) == GREEDY.max_new_tokens

    # A token the model generates at step 3, declared end-of-turn: kept, not in the text.
    policy = HFPolicy(plain.model, plain.tokenizer, prefix_cache=False)
    eos = free.token_ids[2]
    policy.eos_ids = {*policy.eos_ids, eos}
    stopped = policy.generate([prompt], GREEDY)[0]
    cut = free.token_ids.index(eos) + 1
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids == free.token_ids[:cut] and len(stopped.logprobs) == cut
    assert stopped.text == plain.tokenizer.decode(free.token_ids[: cut - 1])

    # A stop string: the completion ends right after its first occurrence.
    stop = printable_token_text(plain.tokenizer, free.token_ids)
    gen = plain.generate([prompt], SamplingParams(max_new_tokens=8, temperature=0, stop=(stop,)))[0]
    assert gen.finish_reason == "stop" and stop in gen.text
    assert stop not in plain.tokenizer.decode(gen.token_ids[:-1])
    assert gen.token_ids == free.token_ids[: len(gen.token_ids)]
    assert len(gen.token_ids) < len(free.token_ids)


# ---------------------------------------------------------------------- prefix cache


def run_conversation(plain, cached, prompts, turns=3, stop_turn=1):
    """Drive `turns` calls like the rollout does (completion + closing + next observation,
    of a different length per row) and check cached == uncached at every turn."""
    fmt = ChatFormat(plain.tokenizer)
    contexts = [list(p) for p in prompts]
    reasons = set()
    for turn in range(turns):
        params = SamplingParams(max_new_tokens=[7, 4, 9][turn % 3], temperature=0)
        if turn == stop_turn:  # a stop string that cuts some rows and not others
            probe = plain.generate(contexts, params)
            params = SamplingParams(
                max_new_tokens=params.max_new_tokens,
                temperature=0,
                stop=(printable_token_text(plain.tokenizer, probe[0].token_ids),),
            )
        before = cached.cache.stats.prefilled_tokens
        want = plain.generate(contexts, params)
        got = cached.generate(contexts, params)
        assert_same(got, want)
        reasons |= {g.finish_reason for g in got}
        if turn:  # every row found its previous turn: only the new tokens were prefilled
            new_tokens = cached.cache.stats.prefilled_tokens - before
            assert new_tokens < sum(len(c) for c in contexts) // 2
        contexts = [
            c + g.token_ids + fmt.closing(g.token_ids) + fmt.user_turn(f"Turn {turn}: " + "no. " * (3 * row + turn))
            for row, (c, g) in enumerate(zip(contexts, got, strict=True))
        ]
    return reasons


def test_cache_reuse_equals_no_reuse_over_three_turns(plain, cached):
    prompts = chat_prompts(plain.tokenizer, 4)
    reasons = run_conversation(plain, cached, prompts)
    assert reasons == {"stop", "length"}
    stats = cached.cache.stats
    assert stats.hits == 8 and stats.misses == 4  # turn 1 misses, turns 2-3 hit
    assert stats.reused_tokens > stats.prefilled_tokens
    assert len(cached.cache) == 4  # each extended entry was consumed by its continuation


def test_cache_reuse_with_mixed_hits_and_misses_and_batch_split(plain, cached):
    prompts = chat_prompts(plain.tokenizer, 4)
    first = cached.generate(prompts[:2], GREEDY)
    # Two continuations, two fresh prompts, and a batch size that splits them across calls.
    cached.batch_size = 3
    nexts = [p + g.token_ids + [plain.tokenizer.eos_token_id] for p, g in zip(prompts[:2], first, strict=True)]
    batch = [prompts[3], nexts[1], prompts[2], nexts[0]]
    assert_same(cached.generate(batch, GREEDY), plain.generate(batch, GREEDY))
    assert cached.cache.stats.hits == 2


def test_identical_prompts_share_one_entry(plain, cached):
    prompt = chat_prompts(plain.tokenizer, 1)[0]
    first = cached.generate([prompt, prompt], GREEDY)
    nxt = prompt + first[0].token_ids + [plain.tokenizer.eos_token_id]
    assert_same(cached.generate([nxt, nxt], GREEDY), plain.generate([nxt, nxt], GREEDY))
    assert cached.cache.stats.hits == 2


def test_weight_update_invalidates_cache(plain, cached):
    prompts = chat_prompts(plain.tokenizer, 2)
    gens = cached.generate(prompts, GREEDY)
    nexts = [p + g.token_ids for p, g in zip(prompts, gens, strict=True)]
    model = plain.model
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with torch.no_grad():  # an in-place update, as an optimizer step makes
            for p in model.parameters():
                p.mul_(1.5)
        assert_same(cached.generate(nexts, GREEDY), plain.generate(nexts, GREEDY))
        assert cached.cache.stats.hits == 0  # stale keys/values were dropped, not reused
    finally:
        model.load_state_dict(saved)


def test_lru_bound_evicts_oldest_and_lookup_is_exact():
    kv = lambda n: torch.zeros(2, 2, 1, n, 256)  # 2 layers x (k, v): n * 4 KiB  # noqa: E731
    store = PrefixKVCache(max_mb=64 / 1024)  # 64 KiB
    store.put([1, 2, 3, 4], kv(4))  # 16 KiB
    store.put([1, 2, 3, 4, 5, 6], kv(6))  # 24 KiB
    store.put([9, 9], kv(2))  # 8 KiB
    assert store.lookup([1, 2, 3, 4, 5, 6, 7])[0] == (1, 2, 3, 4, 5, 6)  # the longest prefix
    assert store.lookup([1, 2, 3, 4, 5, 0])[0] == (1, 2, 3, 4)  # diverges after 4 tokens
    assert store.lookup([1, 2, 3, 4]) is None  # equal, not a proper prefix: nothing left to prefill
    assert store.lookup([1, 2, 0]) is None and store.lookup([7]) is None
    store.put([5] * 5, kv(5))  # 20 KiB: 68 > 64, the least recently used ([9, 9]) goes
    assert store.stats.evictions == 1 and (9, 9) not in store.entries
    assert store.nbytes == 60 * 1024 <= store.max_bytes
    store.put([8] * 20, kv(20))  # 80 KiB: larger than the whole budget, not stored
    assert len(store) == 3
    store.clear()
    assert len(store) == 0 and store.nbytes == 0 and store.lookup([1, 2, 3, 4, 5]) is None
    with pytest.raises(ValueError):
        store.put([1, 2], kv(3))


def test_policy_cache_stays_within_budget(plain):
    prompts = chat_prompts(plain.tokenizer, 4)
    # tiny-random keeps 2 layers x 2 x 2 heads x 16 dims x 4 bytes = 512 bytes per token.
    budget_mb = 1.5 * max(len(p) + 8 for p in prompts) * 512 / 2**20
    policy = HFPolicy(plain.model, plain.tokenizer, cache_mb=budget_mb)
    assert_same(policy.generate(prompts, GREEDY), plain.generate(prompts, GREEDY))
    assert policy.cache.nbytes <= policy.cache.max_bytes
    assert policy.cache.stats.evictions >= 2 and len(policy.cache) == 1
    policy.clear_cache()
    assert len(policy.cache) == 0 and policy.cache.nbytes == 0


def test_sliding_window_models_fall_back_to_full_prefill(plain):
    from transformers import MistralConfig, MistralForCausalLM

    def mistral(window):
        config = MistralConfig(
            vocab_size=len(plain.tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            sliding_window=window,
        )
        return HFPolicy(MistralForCausalLM(config).eval(), plain.tokenizer)

    # A sliding-window cache drops old positions, so it cannot be kept and re-padded.
    assert not mistral(16).prefix_cache
    assert mistral(None).prefix_cache


# ---------------------------------------------------------------------- embedded model


def test_cache_reuse_on_smollm2():
    real = HFPolicy("smollm2-135m", prefix_cache=False)
    reuse = HFPolicy(real.model, real.tokenizer, prefix_cache=True)
    prompts = chat_prompts(real.tokenizer, 2)  # two lengths; kept small, the model is 135M
    run_conversation(real, reuse, prompts, turns=2, stop_turn=None)
    assert reuse.cache.stats.hits == 2


def test_unknown_model_says_how_to_get_it(monkeypatch):
    import huggingface_hub.constants

    # Offline, so the hub lookup fails at once instead of retrying the network.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError) as info:
        HFPolicy("agentgym-test/no-such-model")
    message = str(info.value)
    assert "no-such-model" in message
    assert "huggingface-cli download" in message and "smollm2-135m" in message


# ---------------------------------------------------------------------- the sampled distribution

#: Qwen2.5-7B-Instruct's generation_config.json: generate() would apply all of it by default.
QWEN_DEFAULTS = {"repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20}


def qwen_like(wrap: str):
    tokenizer = load_tokenizer("tiny-random")
    model = build_tiny_model(tokenizer, seed=0, init_std=0.2, tied=False).eval()
    for key, value in QWEN_DEFAULTS.items():
        setattr(model.generation_config, key, value)
    if wrap == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    return model, tokenizer


def training_forward(model, prompt, completion, temperature):
    """The trainer's own log-probs of `completion` (`token_logprobs` on a padded batch)."""
    from agentgym.trainers.common import Row, pad_rows, token_logprobs

    row = Row(prompt + completion, [0] * len(prompt) + [1] * len(completion), [0.0] * (len(prompt) + len(completion)))
    with torch.no_grad():
        logp = token_logprobs(model, pad_rows([row], 0), temperature)
    return logp[0, len(prompt) :].tolist()


@pytest.mark.parametrize("wrap", ["plain", "lora"])
@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
def test_rollouts_sample_the_distribution_they_record_whatever_the_models_generation_config(wrap, cache):
    model, tokenizer = qwen_like(wrap)
    policy = HFPolicy(model, tokenizer, prefix_cache=cache)
    prompts = chat_prompts(tokenizer, 4) * 4
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=0)
    gens = policy.generate(prompts, params)
    outside_top_20 = 0
    for prompt, gen in zip(prompts, gens, strict=True):
        assert gen.logprobs == pytest.approx(training_forward(model, prompt, gen.token_ids, 1.0), abs=1e-4)
        with torch.no_grad():
            logits = model(torch.tensor([prompt + gen.token_ids])).logits[0, len(prompt) - 1 : -1]
        ranks = (logits > logits.gather(1, torch.tensor(gen.token_ids).view(-1, 1))).sum(1)
        outside_top_20 += int((ranks >= 20).sum())
    assert outside_top_20 > 0  # the model's top_k=20 was not applied either
    base = model.get_base_model() if wrap == "lora" else model
    assert base.generation_config.repetition_penalty == 1.05  # the model keeps its own config


def test_with_top_k_or_top_p_the_logprobs_are_those_of_the_truncated_distribution(plain):
    prompt = chat_prompts(plain.tokenizer, 1)[0]
    for params in (SamplingParams(6, 0.8, seed=1, top_k=5), SamplingParams(6, 0.8, top_p=0.3, seed=1)):
        (gen,) = plain.generate([prompt], params)
        with torch.no_grad():
            logits = plain.model(torch.tensor([prompt + gen.token_ids])).logits[0, len(prompt) - 1 : -1] / 0.8
        probs = torch.softmax(logits, -1)
        order = probs.sort(-1, descending=True)
        if params.top_k:
            kept = torch.zeros_like(probs, dtype=torch.bool).scatter(1, order.indices[:, :5], True)
        else:  # the smallest set of most likely tokens whose mass reaches top_p
            before = order.values.cumsum(-1) - order.values
            kept = torch.zeros_like(probs, dtype=torch.bool).scatter(1, order.indices, before < 0.3)
        truncated = torch.log_softmax(logits.masked_fill(~kept, float("-inf")), -1)
        chosen = torch.tensor(gen.token_ids).view(-1, 1)
        assert kept.gather(1, chosen).all()
        assert gen.logprobs == pytest.approx(truncated.gather(1, chosen).squeeze(1).tolist(), abs=1e-4)


# ---------------------------------------------------------------------- work per call


class CountRows:
    """Records the rows and new columns of every forward pass of a model."""

    def __init__(self, model):
        self.calls: list[tuple[int, int]] = []
        self.handle = model.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.calls.append(tuple(ids.shape))

    def close(self):
        self.handle.remove()


def test_a_row_that_ends_leaves_the_batch_and_the_rest_decode_without_it(plain):
    prompts = chat_prompts(plain.tokenizer, 3)
    free = plain.generate(prompts, GREEDY)
    policy = HFPolicy(plain.model, plain.tokenizer, prefix_cache=False)
    policy.eos_ids = {*policy.eos_ids, free[1].token_ids[1]}  # row 1 ends at its second token
    counter = CountRows(plain.model)
    try:
        gens = policy.generate(prompts, GREEDY)
    finally:
        counter.close()
    assert gens[1].finish_reason == "stop" and len(gens[1].token_ids) == 2
    assert_same(gens, [policy.generate([p], GREEDY)[0] for p in prompts])
    rows_per_step = [rows for rows, _ in counter.calls[1:]]  # after the prompt's forward pass
    assert rows_per_step[0] == 3 and set(rows_per_step[1:]) <= {2}
    assert len(rows_per_step) == GREEDY.max_new_tokens - 1


def test_prompts_that_share_a_prefix_prefill_it_once(plain, cached):
    system = [{"role": "system", "content": "You play a guessing game. " * 6}]
    fmt = ChatFormat(plain.tokenizer)
    tasks = [fmt.start([*system, {"role": "user", "content": f"Guess a number up to {n}."}]) for n in (10, 200)]
    prompts = [tasks[0]] * 4 + [tasks[1]] * 2  # a group of 4 samples, a group of 2, one system prompt
    shared = next(i for i, (a, b) in enumerate(zip(*tasks, strict=False)) if a != b)
    params = SamplingParams(max_new_tokens=5, temperature=0.9, seed=4)
    got = cached.generate(prompts, params)
    # The shared prefix once, each task's own tail once, and each row's last prompt token.
    assert cached.cache.stats.prefilled_tokens == shared + sum(len(t) - 1 - shared for t in tasks) + len(prompts)
    torch.manual_seed(0)
    for prompt, gen in zip(prompts, got, strict=True):
        assert gen.logprobs == pytest.approx(forward_logprobs(plain, prompt, gen.token_ids, 0.9), abs=1e-4)
    assert_same(cached.generate(prompts, GREEDY), plain.generate(prompts, GREEDY))
