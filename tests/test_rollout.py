"""Multi-turn rollouts: token-exact trajectories, loss masks, end reasons, batching."""

import re

import gymnasium
import pytest
from agentgym.envs.guess_number.oracle import BisectionOracle

import agentgym
from agentgym import Outcome, Task, TextEnv
from agentgym.policy import Generation, SamplingParams, ScriptedPolicy
from agentgym.rollout import EpisodeSpec, RolloutOptions, RolloutStats, run_episodes
from agentgym.rollout.prompting import ChatFormat
from agentgym.trajectory import load_trajectories, save_trajectories

ENV = "agentgym/GuessNumber-16-v0"


BISECTION = BisectionOracle(16)  # one oracle for every episode: it replays each conversation


def bisect(msgs):
    return f"My guess: {BISECTION.respond(msgs)}"


def run(tokenizer, respond=bisect, horizon=6, n=6, env_id=ENV, max_new_tokens=64, **opts):
    tasks = gymnasium.make(env_id).unwrapped.tasks("test")[:n]
    specs = [EpisodeSpec(t.id, horizon) for t in tasks]
    options = RolloutOptions(max_new_tokens=max_new_tokens, **opts)
    return run_episodes(
        ScriptedPolicy(tokenizer, respond),
        lambda: gymnasium.make(env_id),
        env_id,
        specs,
        SamplingParams(max_new_tokens),
        options,
    ), tasks


@pytest.mark.parametrize("tokenizer_name", ["smol_tokenizer", "plain_tokenizer"])
def test_trajectory_tokens_decode_to_exactly_the_conversation(tokenizer_name, request):
    tok = request.getfixturevalue(tokenizer_name)
    trajs, _ = run(tok)
    for traj in trajs:
        seg = traj.segments[0]
        seen = tok.decode(seg.input_ids, skip_special_tokens=False)
        # The conversation up to the last assistant message (the final observation is never shown to the policy).
        expected = tok.apply_chat_template(traj.messages[:-1], tokenize=False)
        assert seen == expected


@pytest.mark.parametrize("tokenizer_name", ["smol_tokenizer", "plain_tokenizer"])
def test_completions_cut_by_the_token_budget_are_closed_by_the_template(tokenizer_name, request):
    tok = request.getfixturevalue(tokenizer_name)
    trajs, _ = run(tok, respond=lambda m: "word " * 50, horizon=2, n=2, max_new_tokens=8)
    for traj in trajs:
        assert tok.decode(traj.segments[0].input_ids, skip_special_tokens=False) == tok.apply_chat_template(
            traj.messages[:-1], tokenize=False
        )


def test_loss_mask_is_one_exactly_on_generated_tokens(smol_tokenizer):
    tok = smol_tokenizer
    trajs, _ = run(tok)
    for traj in trajs:
        seg = traj.segments[0]
        assert len(seg.completion_ids) == len(seg.loss_mask) == len(seg.logprobs)
        generated = [t for t, m in zip(seg.completion_ids, seg.loss_mask, strict=True) if m]
        replies = [m["content"] for m in traj.messages if m["role"] == "assistant"]
        expected = []
        for reply in replies:
            expected += tok(reply, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert generated == expected
        assert sum(seg.loss_mask) == traj.generated_tokens


def test_end_reasons_success_and_over_turn(smol_tokenizer):
    trajs, tasks = run(smol_tokenizer, horizon=3, n=12)
    for traj, task in zip(trajs, tasks, strict=True):
        if task.min_turns <= 3:
            assert traj.end_reason == "success" and traj.success and traj.reward == 1.0
            assert traj.turns == task.min_turns
        else:
            assert traj.end_reason == "over_turn" and not traj.success and traj.turns == 3


def test_wrong_final_answer_ends_as_failure(smol_tokenizer):
    trajs, _ = run(smol_tokenizer, respond=lambda m: "<answer>0</answer>", env_id=ENV)
    assert all(t.end_reason == "over_turn" for t in trajs)  # out-of-range guesses: feedback, no ending
    env_id = agentgym.register(
        "GuessFinal-test-v0", "agentgym.envs.guess_number.env:GuessNumberEnv", n=16, answer_is_final=True
    )
    trajs, tasks = run(smol_tokenizer, respond=lambda m: "<answer>1</answer>", env_id=env_id)
    for traj, task in zip(trajs, tasks, strict=True):
        assert traj.end_reason == ("success" if task.metadata["target"] == 1 else "failure")


class Exploding(TextEnv):
    """Crashes at a given turn."""

    def make_tasks(self, split):
        return [Task(f"{split}-{i}", "Say anything.", split, metadata={"crash_at": i}) for i in range(3)]

    def setup(self, task):
        self.crash_at = task.metadata["crash_at"]
        return task.instruction

    def transition(self, action):
        if self.turn + 1 >= self.crash_at:
            raise RuntimeError(f"env crashed at turn {self.turn + 1}")
        return Outcome("go on")


def test_env_exception_aborts_only_its_episode_and_keeps_the_error(smol_tokenizer):
    env_id = agentgym.register("Exploding-test-v0", Exploding)
    specs = [EpisodeSpec(f"test-{i}", 4) for i in range(3)] + [EpisodeSpec("test-2", 1)]
    trajs = run_episodes(
        ScriptedPolicy(smol_tokenizer, ["hello"]), lambda: gymnasium.make(env_id), env_id, specs, SamplingParams(16)
    )
    assert [t.end_reason for t in trajs] == ["aborted", "aborted", "aborted", "over_turn"]
    assert "env crashed at turn 1" in trajs[0].error and trajs[0].turns == 0
    assert "env crashed at turn 2" in trajs[2].error and trajs[2].turns == 1
    assert trajs[0].reward == 0.0 and not trajs[0].success


def test_context_window_ends_the_episode_overlong(smol_tokenizer):
    trajs, _ = run(
        smol_tokenizer, respond=lambda m: "<answer>0</answer> " + "blah " * 40, horizon=50, n=2, max_context_tokens=700
    )
    for traj in trajs:
        assert traj.end_reason == "overlong"
        assert len(traj.segments[0]) <= 700 and traj.turns >= 2  # the window was never exceeded


def test_generation_is_batched_across_every_waiting_episode(smol_tokenizer):
    sizes = []

    class Recording(ScriptedPolicy):
        def generate(self, prompts, params, messages=None):
            sizes.append(len(prompts))
            return super().generate(prompts, params, messages)

    tasks = gymnasium.make(ENV).unwrapped.tasks("test")[:10]
    stats = RolloutStats()
    run_episodes(
        Recording(smol_tokenizer, bisect),
        lambda: gymnasium.make(ENV),
        ENV,
        [EpisodeSpec(t.id, 8) for t in tasks],
        SamplingParams(32),
        max_concurrent=4,
        stats=stats,
    )
    assert sizes[0] == 4 and max(sizes) == 4
    assert sum(sizes) == sum(stats.batch_sizes) and stats.episodes == 10


def test_announce_budget_check_again_and_budget_tracker_reach_the_agent(smol_tokenizer):
    trajs, tasks = run(smol_tokenizer, horizon=8, n=3, announce_budget=True, check_again=True, budget_tracker=True)
    for traj, task in zip(trajs, tasks, strict=True):
        assert "You have at most 8 turns." in traj.messages[0]["content"]
        observations = [m["content"] for m in traj.messages if m["role"] == "user"]
        assert sum("check your work once more" in o for o in observations) == 1
        assert "<budget>turns used: 1, turns left: 7" in observations[1]
        assert traj.turns == task.min_turns + 1 and traj.success


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_trajectories_round_trip_through_files(smol_tokenizer, tmp_path, suffix):
    trajs, _ = run(smol_tokenizer, n=3)
    path = save_trajectories(trajs, tmp_path / f"t{suffix}")
    assert load_trajectories(path) == trajs


def test_tools_go_through_the_template_when_it_supports_them(smol_tokenizer):
    import copy

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = (
        "{% if tools %}<|im_start|>tools\n{{ tools | tojson }}<|im_end|>\n{% endif %}" + smol_tokenizer.chat_template
    )
    fmt = ChatFormat(tok)
    assert fmt.tools_in_template
    trajs, _ = run(tok, n=1)
    traj = trajs[0]
    assert "<tools>" not in traj.messages[0]["content"]
    assert '"name": "guess"' in tok.decode(traj.segments[0].prompt_ids)
    plain, _ = run(smol_tokenizer, n=1)
    assert "<tools>" in plain[0].messages[0]["content"]


def test_chat_format_closing_counts_what_the_model_already_generated(smol_tokenizer):
    fmt = ChatFormat(smol_tokenizer)
    fmt.start([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    nl = smol_tokenizer("\n", add_special_tokens=False)["input_ids"]
    eos = smol_tokenizer.eos_token_id
    assert fmt.closing([5, 6, eos]) == nl
    assert fmt.closing([5, 6]) == [eos, *nl]


def test_generation_dataclass_and_scripted_replay_list(smol_tokenizer):
    policy = ScriptedPolicy(smol_tokenizer, ["a", "b"])
    msgs = [{"role": "user", "content": "x"}]
    (g,) = policy.generate([[1]], SamplingParams(8), [msgs])
    assert isinstance(g, Generation) and g.text == "a" and g.finish_reason == "stop"
    (g,) = policy.generate([[1]], SamplingParams(8), [[*msgs, {"role": "assistant", "content": "a"}]])
    assert g.text == "b"


def test_each_reply_is_recorded_as_a_span_with_the_turn_it_produced(smol_tokenizer):
    from tests.test_context import kv_run

    (traj,) = kv_run(smol_tokenizer, n=1, context="summarize", max_summaries=10)
    spans = [s for seg in traj.segments for s in seg.spans]
    assert [s.kind for s in spans].count("summary") == traj.summaries >= 2
    assert [s.turn for s in spans if s.kind == "action"] == list(range(traj.turns))
    for seg in traj.segments:
        generated = [t for t, m in enumerate(seg.loss_mask) if m]
        assert generated == [t for s in seg.spans for t in range(s.start, s.end)]  # the spans are the generated tokens
    for seg in traj.segments:
        for s in seg.spans:  # each span is the reply in the message it points at, plus its end-of-turn token
            text = smol_tokenizer.decode(seg.completion_ids[s.start : s.end - 1])
            assert traj.messages[s.message] == {"role": "assistant", "content": text}


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_spans_round_trip_and_schema_1_files_get_them_from_the_loss_mask(smol_tokenizer, tmp_path, suffix):
    import json

    from tests.test_context import kv_run

    trajs = [*run(smol_tokenizer, n=2)[0], *kv_run(smol_tokenizer, n=1, context="summarize", max_summaries=10)]
    path = save_trajectories(trajs, tmp_path / f"t{suffix}")
    assert load_trajectories(path) == trajs
    # A file written before spans were recorded (schema 1): no spans, no version.
    legacy = tmp_path / "v1.jsonl"
    rows = [t.to_dict() for t in trajs]
    for row in rows:
        del row["schema_version"]
        for seg in row["segments"]:
            del seg["spans"]
    legacy.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_trajectories(legacy) == trajs


@pytest.fixture
def saved(smol_tokenizer, tmp_path):
    trajs, _ = run(smol_tokenizer, n=6)
    return trajs, save_trajectories(trajs, tmp_path / "t.jsonl")


def _damage(path, number, text):
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = text
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda line: line[: len(line) // 2] + b"\n", "invalid JSON"),  # cut short
        (lambda line: b"\xff\xfe garbage\n", "not UTF-8"),
        (lambda line: b"[1, 2, 3]\n", "must be a JSON object"),
        (lambda line: re.sub(rb'"turns": \d+', b'"turns": "three"', line), "turns must be an integer"),
    ],
    ids=["cut", "garbage", "not-an-object", "wrong-type"],
)
def test_a_damaged_line_is_an_error_naming_the_file_and_line_or_is_skipped_when_asked(saved, capsys, damage, message):
    from agentgym.trajectory import TrajectoryFileError

    trajs, path = saved
    line = path.read_bytes().splitlines(keepends=True)[4]
    _damage(path, 5, damage(line))
    with pytest.raises(TrajectoryFileError, match=rf"{path}:5: .*{message}"):
        load_trajectories(path)
    kept = load_trajectories(path, skip_bad=True)
    assert kept == trajs[:4] + trajs[5:]
    assert f"{path}: skipped 1 damaged line(s) of 6; first: line 5" in capsys.readouterr().err


def test_a_cut_last_line_says_the_file_ends_there(saved):
    from agentgym.trajectory import TrajectoryFileError

    _, path = saved
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(TrajectoryFileError, match=r":6: invalid JSON.*cut short"):
        load_trajectories(path)
