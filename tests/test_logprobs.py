"""The trainers' token log-probs: computed at the trained tokens only, with the prefix the
rows share run once, and equal (values and gradients) to one plain forward pass."""

from __future__ import annotations

import pytest
import torch
from agentgym.trainers.common import Row, pad_rows, token_logprobs
from agentgym.trainers.logprobs import MIN_SHARED_PREFIX

from agentgym.policy import load_tokenizer
from agentgym.policy.models import build_tiny_model


def tiny(lora: bool):
    tokenizer = load_tokenizer("tiny-random")
    model = build_tiny_model(tokenizer, seed=0, init_std=0.2, tied=False)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        for name, p in model.named_parameters():  # non-zero B: the adapter changes the output
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.1)
    return model.train()


def rows(shared: int = 24) -> list[Row]:
    """Rows of different lengths that open with the same `shared` tokens, masks on their tails."""
    gen = torch.Generator().manual_seed(1)
    prefix = torch.randint(5, 1000, (shared,), generator=gen).tolist()
    out = []
    for k, n in enumerate((9, 15, 4)):
        ids = prefix + torch.randint(5, 1000, (n,), generator=gen).tolist()
        mask = [0] * len(ids)
        for t in range(len(ids) - n + 1, len(ids), 1 + k % 2):
            mask[t] = 1
        mask[shared - 2] = int(k == 0)  # a trained token inside the shared prefix, in one row
        out.append(Row(ids, mask, [0.0] * len(ids)))
    return out


def plain_logprobs(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    logp = torch.log_softmax(logits[:, :-1].float() / 0.7, -1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    return torch.cat([torch.zeros_like(logp[:, :1]), logp], 1) * batch.loss_mask


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_log_probs_and_gradients_equal_one_plain_forward_pass_and_are_zero_off_the_mask(lora):
    model = tiny(lora)
    batch = pad_rows(rows(), 0)
    weights = torch.randn(batch.loss_mask.shape, generator=torch.Generator().manual_seed(2))
    params = [p for p in model.parameters() if p.requires_grad]

    want = plain_logprobs(model, batch)
    want_grads = torch.autograd.grad((want * weights).sum(), params)
    got = token_logprobs(model, batch, 0.7)
    got_grads = torch.autograd.grad((got * weights).sum(), params)

    assert got.shape == batch.input_ids.shape
    assert (got[batch.loss_mask == 0] == 0).all()
    assert torch.allclose(got, want, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert torch.allclose(g, w, atol=1e-5, rtol=1e-4)


def test_the_prefix_every_row_shares_runs_through_the_model_once():
    model = tiny(lora=False)
    seen = []
    handle = model.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        batch = pad_rows(rows(shared=MIN_SHARED_PREFIX + 8), 0)
        token_logprobs(model, batch)
        width = batch.input_ids.shape[1]
        assert seen == [(1, MIN_SHARED_PREFIX + 8), (3, width - MIN_SHARED_PREFIX - 8)]
        seen.clear()
        token_logprobs(model, pad_rows(rows(shared=MIN_SHARED_PREFIX - 1), 0))  # too short to be worth a pass
        assert [rows for rows, _ in seen] == [3]
    finally:
        handle.remove()


def test_every_position_and_the_hidden_states_are_those_of_the_plain_pass():
    model = tiny(lora=False).eval()
    batch = pad_rows(rows(), 0)
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
        logp, hidden = token_logprobs(model, batch, return_hidden=True, every_position=True)
    full = torch.log_softmax(out.logits[:, :-1], -1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    real = batch.attention_mask.bool()
    assert torch.allclose(logp[:, 1:][real[:, 1:]], full[real[:, 1:]], atol=1e-5)
    assert torch.allclose(hidden[real], out.hidden_states[-1][real], atol=1e-5)
