"""Behaviour cloning: oracle episodes, loss on assistant tokens only, the loss goes down."""

import pytest
from agentgym.trainers.config import load_train_config
from agentgym.trainers.sft import behaviour_clone, collect_oracle, sft_loss, sft_rows

from agentgym.policy import load_model
from tests.test_train_support import one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def oracle_setup():
    cfg = load_train_config(
        None,
        [
            "policy.model=tiny-random",
            "env.id=agentgym/GuessNumber-16-v0",
            "env.kwargs={guess_tool: false}",
            "sampling.max_new_tokens=12",
            "warm_start.oracle=agentgym.envs.guess_number.oracle:BisectionOracle",
            "warm_start.oracle_kwargs={n: 16}",
            "warm_start.episodes=4",
            "warm_start.horizon=6",
            "progress=false",
        ],
    )
    _, tok = load_model("tiny-random")
    trajs = collect_oracle(cfg, tok)
    return cfg, tok, trajs


def test_oracle_episodes_succeed_and_the_loss_mask_covers_exactly_the_assistant_replies(oracle_setup):
    _, tok, trajs = oracle_setup
    assert all(t.success for t in trajs)
    rows = sft_rows(trajs)
    assert len(rows) == len(trajs)
    for row, traj in zip(rows, trajs, strict=True):
        trained = tok.decode([t for t, m in zip(row.input_ids, row.loss_mask, strict=True) if m])
        replies = [m["content"] for m in traj.messages if m["role"] == "assistant"]
        assert trained == "".join(r + tok.eos_token for r in replies)
        assert "Reply with" not in trained and "wrong" not in trained  # no system or env text


def test_only_successful_trajectories_are_cloned(oracle_setup):
    _, _, trajs = oracle_setup
    failed = trajs[0].__class__(**{**trajs[0].__dict__, "success": False, "end_reason": "failure"})
    assert len(sft_rows([failed, *trajs[1:]])) == len(trajs) - 1


@pytest.mark.parametrize("backend", ["plain", "trl"])
def test_behaviour_cloning_lowers_the_loss_on_assistant_tokens(oracle_setup, backend):
    cfg, _, trajs = oracle_setup
    model, tok = load_model("tiny-random")
    ws = cfg.warm_start
    ws.backend, ws.lr, ws.epochs, ws.batch_size = backend, 0.01, 3.0, 4
    rows = sft_rows(trajs)
    info = behaviour_clone(model, tok, rows, ws, cfg)
    assert info["sft_loss_after"] < info["sft_loss_before"] - 0.5, info
    assert sft_loss(model, rows, tok.pad_token_id) == pytest.approx(info["sft_loss_after"], rel=1e-4)


class TurnByTurn:
    """An oracle in the shape `ReplayOracle` serves, without `ReplayOracle`."""

    def act(self, observation):
        return "<answer>8</answer>"


def test_a_warm_start_oracle_with_act_but_no_respond_is_refused_with_the_fix():
    from agentgym.trainers.sft import load_oracle

    from agentgym.config import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"warm_start\.oracle: tests.test_sft:TurnByTurn has act\(observation\) but no respond.*ReplayOracle",
    ):
        load_oracle("tests.test_sft:TurnByTurn", {})


def test_the_warm_starts_success_rate_leaves_aborted_episodes_out(oracle_setup, tmp_path):
    import dataclasses

    from agentgym.trainers.sft import warm_start

    from agentgym.trajectory import save_trajectories

    cfg, tok, trajs = oracle_setup
    aborted = [dataclasses.replace(t, success=False, end_reason="aborted") for t in trajs[:2]]
    path = save_trajectories([*trajs, *aborted], tmp_path / "demos.jsonl")
    ws = dataclasses.replace(cfg.warm_start, source="file", path=str(path), backend="plain", epochs=0.25)
    info = warm_start(load_model("tiny-random")[0], tok, dataclasses.replace(cfg, warm_start=ws))
    assert info["sft_success_rate"] == 1.0  # every episode that was not aborted won


def test_the_plain_warm_start_trains_on_every_row_once_per_epoch(oracle_setup, monkeypatch):
    import agentgym.trainers.sft as sft

    cfg, _, trajs = oracle_setup
    model, tok = load_model("tiny-random")
    rows = [r for _ in range(3) for r in sft_rows(trajs)]  # 12 rows
    for k, r in enumerate(rows):  # tell them apart by their first token
        r.input_ids = [1000 + k, *r.input_ids[1:]]
    seen: list[int] = []
    real = sft.pad_rows

    def recording(batch_rows, pad_id):
        seen.extend(r.input_ids[0] - 1000 for r in batch_rows)
        return real(batch_rows, pad_id)

    monkeypatch.setattr(sft, "pad_rows", recording)
    ws = cfg.warm_start
    ws.backend, ws.epochs, ws.batch_size = "plain", 2.0, 4
    monkeypatch.setattr(sft, "sft_loss", lambda *a, **k: 0.0)  # only the training passes are recorded
    behaviour_clone(model, tok, rows, ws, cfg)
    assert len(seen) == 24 and sorted(seen[:12]) == sorted(seen[12:]) == list(range(12))
    assert seen[:12] != seen[12:]  # a new order each epoch


def test_a_warm_start_under_a_summarizing_context_teaches_the_summaries_the_oracle_writes():
    """warm_start.context=rollout: the scripted summariser's episodes keep the rollout's
    context, so the cloned rows hold its summaries (trained) and the turns after them."""
    settings = [
        "policy.model=tiny-random",
        "env.id=agentgym/GuessNumber-v0",
        "env.kwargs={guess_tool: false, n: 64}",
        "sampling.max_new_tokens=20",
        "sampling.stop=['</answer>', '</summary>']",
        "rollout.context=summarize",
        "rollout.max_context_tokens=300",
        "rollout.summarize.max_summaries=8",
        "warm_start.oracle=agentgym.envs.guess_number.oracle:SummarizingGuesser",
        "warm_start.oracle_kwargs={n: 64}",
        "warm_start.episodes=16",
        "warm_start.horizon=16",
        "progress=false",
    ]
    _, tok = load_model("tiny-random")
    full = collect_oracle(load_train_config(None, settings), tok)
    assert all(t.summaries == 0 for t in full)  # by default the oracle keeps the whole conversation
    trajs = collect_oracle(load_train_config(None, [*settings, "warm_start.context=rollout"]), tok)
    summarized = [t for t in trajs if t.summaries]
    assert summarized and all(t.success for t in summarized)
    rows = sft_rows(summarized)
    summaries = [
        r for r, seg in zip(rows, (s for t in summarized for s in t.segments), strict=True) if seg.kind == "summary"
    ]
    assert summaries
    for row in summaries:
        trained = tok.decode([t for t, m in zip(row.input_ids, row.loss_mask, strict=True) if m])
        assert "<summary>The number is between " in trained
