"""The agentgym command: envs, play, and --help everywhere."""

import json
import signal
import subprocess
import sys
import time

import pytest

from agentgym.cli import main
from agentgym.cli.play import expand_shortcut
from tests.test_train_support import default_ctrl_c

AGENTGYM = [sys.executable, "-m", "agentgym.cli"]


def test_envs_lists_ids_descriptions_and_task_counts(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("agentgym/GuessNumber-v0 "))
    assert "higher/lower" in line and "[train=1000 test=200]" in line
    # An env whose tasks are the user's (a site config) says what it needs instead of an error.
    site = next(row for row in out.splitlines() if row.startswith("agentgym/Site-v0 "))
    assert "[tasks from env.kwargs: config]" in site and "error" not in site
    assert "error" not in "".join(row for row in out.splitlines() if row.startswith("agentgym/Web"))


@pytest.mark.parametrize("args", [["--help"], ["envs", "--help"], ["play", "--help"]])
def test_help_works_on_every_command(args):
    out = subprocess.run([*AGENTGYM, *args], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: agentgym" in out.stdout


def test_no_command_prints_help_and_fails():
    out = subprocess.run(AGENTGYM, capture_output=True, text=True)
    assert out.returncode == 2 and "COMMAND" in out.stdout


def test_shortcuts_expand_to_actions():
    assert expand_shortcut("/answer 42") == "<answer>42</answer>"
    assert expand_shortcut("/call guess n=50") == '<tool_call>{"name": "guess", "arguments": {"n": 50}}</tool_call>'
    assert expand_shortcut('/call search query="two words" k=3') == (
        '<tool_call>{"name": "search", "arguments": {"query": "two words", "k": 3}}</tool_call>'
    )
    assert expand_shortcut('/call f {"a": [1]}') == '<tool_call>{"name": "f", "arguments": {"a": [1]}}</tool_call>'
    assert expand_shortcut("/tools") is None


def test_play_guess_number_to_the_end_by_bisection():
    # GuessNumber-16 test task 0; the player bisects by reading the feedback, like a person.
    from agentgym.envs.guess_number.env import GuessNumberEnv

    target = GuessNumberEnv(n=16).get_task("guess16-test-0000").metadata["target"]
    lo, hi, moves = 1, 16, []
    while True:
        mid = (lo + hi) // 2
        moves.append(f"/answer {mid}" if len(moves) % 2 else f"/call guess n={mid}")
        if mid == target:
            break
        lo, hi = (mid + 1, hi) if target > mid else (lo, mid - 1)
    stdin = "\n".join(["/tools", "not an action", *moves]) + "\n"
    out = subprocess.run(
        [*AGENTGYM, "play", "agentgym/GuessNumber-16-v0", "--task", "guess16-test-0000", "--max-turns", "6"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "guess(n: integer)" in out.stdout
    assert "no action found in 'not an action'" in out.stdout and "(invalid action)" in out.stdout
    assert f"Correct! The number is {target}." in out.stdout
    assert "episode over (terminated): SUCCESS, return 1" in out.stdout


def test_play_quits_cleanly_on_end_of_input():
    out = subprocess.run([*AGENTGYM, "play", "KVSum-v0"], input="", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Dictionary:" in out.stdout and "bye" in out.stdout


def one_line_error(capsys, args, *, debug_raises=None):
    """Run `agentgym ARGS` in-process: exit 2 and one stderr line, no traceback."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    if debug_raises is not None:
        with pytest.raises(debug_raises):
            main(["--debug", *args])
    return err


def test_a_damaged_warm_start_file_is_one_line_naming_the_file_and_line(tmp_path, capsys):
    from agentgym.trajectory import TrajectoryFileError

    demos = tmp_path / "demos.jsonl"
    demos.write_text('{"env_id": "e", "task_id": "t", "turns": "three"}\n')
    args = [
        "train",
        "policy.model=tiny-random",
        "env.id=agentgym/GuessNumber-16-v0",
        "warm_start.enabled=true",
        "warm_start.source=file",
        f"warm_start.path={demos}",
        "steps=1",
        "eval.at_start=false",
        "eval.at_end=false",
        "tensorboard=false",
        "progress=false",
        f"output_dir={tmp_path / 'run'}",
        "overwrite=true",  # the --debug run starts again in the same folder
    ]
    err = one_line_error(capsys, args, debug_raises=TrajectoryFileError)
    assert f"{demos}:1: turns must be an integer" in err


def test_compare_with_an_unreadable_results_file_is_one_line(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text('{"horizons": [')
    err = one_line_error(capsys, ["eval", "--compare", str(tmp_path / "a"), "--output", str(tmp_path / "c.png")])
    assert "results.json cannot be read" in err


TINY_TRAIN = [
    "policy.model=tiny-random",
    "steps=1",
    "tasks_per_step=1",
    "samples_per_task=2",
    "curriculum.start=1",
    "sampling.max_new_tokens=2",
    "eval.at_start=false",
    "eval.at_end=false",
    "tensorboard=false",
    "progress=false",
    "save_final=false",
]


@pytest.mark.parametrize("command", ["eval", "train"])
def test_an_unknown_env_id_is_one_line_before_anything_loads_or_is_written(tmp_path, capsys, command):
    out = tmp_path / "run"
    err = one_line_error(capsys, [command, "env.id=agentgym/GuessNumber-61-v0", f"output_dir={out}", *TINY_TRAIN[:1]])
    assert "env.id: unknown environment 'agentgym/GuessNumber-61-v0'; did you mean 'agentgym/GuessNumber-16-v0'?" in err
    assert not out.exists()


def test_play_with_an_unknown_env_task_or_argument_is_one_line(capsys):
    assert "did you mean 'agentgym/GuessNumber-v0'" in one_line_error(capsys, ["play", "GuesNumber-v0"])
    assert "--task: unknown task_id 'nope'" in one_line_error(capsys, ["play", "GuessNumber-v0", "--task", "nope"])
    assert "has no argument 'm'" in one_line_error(capsys, ["play", "GuessNumber-v0", "--env-arg", "m=3"])


def test_env_kwargs_are_checked_against_the_constructor_with_a_hint_for_yamls_missing_space(tmp_path, capsys):
    err = one_line_error(capsys, ["eval", "env.kwargs={guess_tool:false}", f"output_dir={tmp_path}"])
    assert "YAML reads {guess_tool:false} as one key; write {guess_tool: false}" in err
    err = one_line_error(capsys, ["eval", "env.kwargs={gues_tool: false}", f"output_dir={tmp_path}"])
    assert "GuessNumberEnv has no argument 'gues_tool'; did you mean 'guess_tool'?" in err


@pytest.mark.parametrize("command", ["eval", "train"])
def test_an_output_dir_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert "is a file, not a folder" in one_line_error(capsys, [command, f"output_dir={blocker}", *TINY_TRAIN[:1]])
    err = one_line_error(capsys, [command, f"output_dir={blocker / 'run'}", *TINY_TRAIN[:1]])
    assert "cannot write into" in err


def test_training_into_a_folder_that_holds_a_run_needs_resume_or_overwrite(tmp_path, capsys):
    run = ["train", *TINY_TRAIN, "checkpoint_every=1", f"output_dir={tmp_path}"]
    assert main([*run, "steps=3"]) == 0
    assert "holds a run" in one_line_error(capsys, run)
    assert main([*run, "overwrite=true"]) == 0  # the old run is deleted: its step-3 checkpoint cannot win a resume
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-000001"]


def test_ctrl_c_stops_agentgym_train_with_a_checkpoint_and_one_line_on_how_to_resume(tmp_path):
    """SIGINT mid-run: the step in progress ends, its checkpoint is written, and the command
    exits with the shell's status for SIGINT (130) after one line, without a traceback."""
    metrics = tmp_path / "metrics.jsonl"
    cmd = [*AGENTGYM, "train", *TINY_TRAIN, "steps=100000", "checkpoint_every=0", f"output_dir={tmp_path}"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and not (metrics.exists() and metrics.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first step is logged: the steps are running
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    steps = len(metrics.read_text().splitlines())
    ckpt = tmp_path / "checkpoints" / f"step-{steps:06d}"
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    stops = [line for line in err.splitlines() if line.startswith("stopped by")]
    assert stops == [f"stopped by SIGINT after step {steps} of 100000: checkpoint {ckpt}; continue with resume=true"]
    assert json.loads((ckpt / "state.json").read_text())["step"] == steps


def test_an_evaluation_says_it_replaces_its_earlier_results(tmp_path, capsys):
    args = [
        "eval",
        "policy.model=tiny-random",
        "env.num_tasks=1",
        "samples_per_task=1",
        "horizons=[1]",
        "sampling.max_new_tokens=2",
        "progress=false",
        f"output_dir={tmp_path}",
    ]
    assert main(args) == 0 and "replacing" not in capsys.readouterr().err
    assert main(args) == 0 and f"replacing the earlier evaluation results in {tmp_path}" in capsys.readouterr().err


def test_a_missing_model_folder_or_an_unreachable_hub_id_fails_at_once_saying_what_was_tried(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a hub that cannot be reached, on loopback
    err = one_line_error(capsys, ["eval", f"policy.model={tmp_path}/runs/final", f"output_dir={tmp_path / 'e'}"])
    assert "no model folder at" in err
    err = one_line_error(capsys, ["eval", "policy.model=acme/not-cached-7b", f"output_dir={tmp_path / 'e'}"])
    assert "not in the Hugging Face cache, and the hub is unreachable (127.0.0.1:9" in err
