"""SiteEnv: the browser env on a user's own site (tests/data/site/app.py, started per the
config), with the user's tasks and every check kind, in a real Chromium."""

import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from agentgym.envs.web.oracle import WebOracle, tool_call
from agentgym.envs.web.site import SiteDied, SiteEnv, load_site_config, register_site
from agentgym.envs.web.site_tasks import TaskFileError

APP = Path(__file__).parent / "data" / "site" / "app.py"

TASKS = [
    {"id": "about-answer", "instruction": "What number does the About page give?", "split": "test",
     "check": {"answer": "42", "match": "number"},
     "plan": [{"op": "click", "role": "link", "name": "About"}, {"op": "answer", "text": "It is 42."}]},
    {"id": "open-notes", "instruction": "Open the notes.", "split": "test", "check": {"url": "/notes$"},
     "plan": [{"op": "click", "role": "link", "name": "Notes"}, {"op": "answer", "text": "done"}]},
    {"id": "add-note", "instruction": "Add a note saying Water plants.", "start": "/notes", "split": "test",
     "check": [{"text": "Water plants"}, {"function": "tests.test_site:note_in_database"}],
     "plan": [{"op": "type", "role": "textbox", "name": "New note", "text": "Water plants", "submit": True},
              {"op": "answer", "text": "done"}]},
    {"id": "find-add", "instruction": "Find the page with the Add button.", "split": "test",
     "check": {"element": {"role": "button", "name": "Add"}},
     "plan": [{"op": "click", "role": "link", "name": "Notes"}, {"op": "answer", "text": "done"}]},
    {"id": "no-about", "instruction": "Read the About page (it is blocked in this task).", "split": "train",
     "blocked": ["/about"], "check": {"answer": "42"}},
]  # fmt: skip


def note_in_database(answer, page, db, task):
    """A check function: the note is in the site's database."""
    rows = [t for (t,) in db.execute("select text from notes")]
    return ("Water plants" in rows, f"notes are {rows}")


def write_site(tmp_path: Path, state: str = "reset", **site) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    config = {
        "site": {
            "command": f"{{python}} {APP} {{port}} {{dir}}/notes.db",
            "ready": "/health",
            "state": state,
            **({"reset": {"url": "/__reset"}} if state == "reset" else {}),
            "database": "notes.db",
            **site,
        },
        "tasks": "tasks.jsonl",
    }
    path = tmp_path / "site.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def play(env, task_id: str, oracle: bool = True, actions=()):
    task = next(t for t in env.site_tasks if t.id == task_id)
    obs, _ = env.reset(options={"task_id": task_id})
    policy = WebOracle(task)
    steps = list(actions)
    done, reward, info = False, 0.0, {}
    while not done:
        action = policy.act(obs) if oracle else steps.pop(0)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return obs, reward, info


@pytest.fixture
def env(tmp_path):
    e = SiteEnv(write_site(tmp_path))
    yield e
    e.close()


def test_the_oracle_solves_every_task_and_each_check_kind_fails_a_wrong_episode(env):
    for task in env.site_tasks:
        if "plan" in task.metadata:
            _, reward, info = play(env, task.id)
            assert reward == 1.0, (task.id, info)
    _, reward, info = play(env, "about-answer", oracle=False, actions=["<answer>41</answer>"])
    assert reward == 0.0 and "is not the expected one" in info["check"]
    _, reward, info = play(env, "open-notes", oracle=False, actions=["<answer>done</answer>"])
    assert reward == 0.0 and "is not the expected one" in info["check"]
    _, reward, info = play(env, "find-add", oracle=False, actions=["<answer>done</answer>"])
    assert reward == 0.0 and "no button 'Add'" in info["check"]
    _, reward, info = play(env, "add-note", oracle=False, actions=["<answer>done</answer>"])
    assert reward == 0.0 and "does not show 'Water plants'" in info["check"]


def test_the_reset_hook_gives_each_episode_the_sites_first_state(env, tmp_path):
    _, reward, _ = play(env, "add-note")
    assert reward == 1.0 and re.search(r"listitem \[ref=\w+\]: Water plants", env.observe())
    db = sqlite3.connect(tmp_path / "notes.db")
    assert db.execute("select count(*) from notes").fetchone()[0] == 3
    obs, _ = env.reset(options={"task_id": "add-note"})
    assert "Title: Notes (2)" in obs and not re.search(r"listitem \[ref=\w+\]: Water plants", obs)  # restored
    assert db.execute("select count(*) from notes").fetchone()[0] == 2


def test_splits_blocked_paths_and_starting_paths_come_from_the_task_file(env):
    assert [t.id for t in env.tasks("train")] == ["no-about"]
    assert len(env.tasks("test")) == 4
    env.reset(options={"task_id": "no-about"})
    obs, *_ = env.step(tool_call("goto", url="/about"))
    assert "The answer is 42" not in obs  # this task blocks the page
    obs, _ = env.reset(options={"task_id": "add-note"})
    assert "URL: " + env.tab.origin + "/notes" in obs


def test_a_read_only_site_is_shared_and_a_fresh_one_is_new_each_episode(tmp_path):
    a = SiteEnv(write_site(tmp_path / "ro", state="read_only"))
    b = SiteEnv(write_site(tmp_path / "ro", state="read_only"))
    fresh = SiteEnv(write_site(tmp_path / "fresh", state="fresh"))
    try:
        a.reset(options={"task_id": "open-notes"})
        b.reset(options={"task_id": "open-notes"})
        assert a.tab.origin == b.tab.origin  # one site process serves both
        fresh.reset(options={"task_id": "open-notes"})
        first = fresh.tab.origin
        fresh.reset(options={"task_id": "open-notes"})
        assert fresh.tab.origin != first
    finally:
        for e in (a, b, fresh):
            e.close()


@pytest.fixture
def running_site(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(APP), str(port), str(tmp_path / "running.db")])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(5)


def test_a_running_site_with_a_reset_hook_is_used_by_one_env_at_a_time(tmp_path, running_site):
    config = load_site_config(write_site(tmp_path))
    data = {
        "site": {"url": running_site, "state": "reset", "reset": {"url": "/__reset"}},
        "tasks": str(tmp_path / "tasks.jsonl"),
    }
    first = SiteEnv(data)
    second = SiteEnv(data)
    try:
        first.reset(options={"task_id": "open-notes"})
        assert first.tab.origin == running_site and config.state == "reset"
        with pytest.raises(RuntimeError, match="already used by another env: concurrent episodes would share"):
            second.reset(options={"task_id": "open-notes"})
        first.close()
        second.reset(options={"task_id": "open-notes"})  # free again
    finally:
        first.close()
        second.close()


@pytest.fixture
def listener():
    """A TCP socket on loopback that counts the connections reaching it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.1)
    hits, stop = [0], threading.Event()

    def count():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                hits[0] += 1
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=count, daemon=True)
    thread.start()
    yield srv.getsockname()[1], hits
    stop.set()
    thread.join()
    srv.close()


def test_other_origins_are_blocked_websockets_included_unless_allowed(tmp_path, listener, running_site):
    port, hits = listener
    env = SiteEnv(write_site(tmp_path, allowed_origins=[running_site]))
    try:
        env.reset(options={"task_id": "open-notes"})
        env.tab.page.goto(env.tab.origin + f"/leak?to={port}")
        time.sleep(0.5)
        assert hits[0] == 0  # fetch, image and WebSocket all stopped in the browser
        obs, *_ = env.step(tool_call("goto", url=f"http://127.0.0.1:{port}/"))
        assert "can only reach the local site" in obs
        obs, *_ = env.step(tool_call("goto", url=running_site + "/about"))  # an allowed origin
        assert "The answer is 42" in obs
        socket.create_connection(("127.0.0.1", port)).close()  # the listener does count what reaches it
        time.sleep(0.3)
        assert hits[0] == 1
    finally:
        env.close()


def test_a_site_that_dies_mid_episode_aborts_it_and_the_next_episode_restarts_it(env):
    env.reset(options={"task_id": "open-notes"})
    dead = env.tab.origin
    with pytest.raises(SiteDied, match="the site stopped"):
        env.step(tool_call("goto", url="/crash"))
    obs, _ = env.reset(options={"task_id": "open-notes"})
    assert env.tab.origin != dead and "Home" in obs
    _, reward, _ = play(env, "open-notes")
    assert reward == 1.0


def test_a_site_whose_process_exits_a_moment_after_dropping_the_page_still_aborts_the_episode(env):
    """The browser sees the connection drop before the process can be reaped (under load the
    gap is wide): the failed page is the site's death, not an error page for the agent."""
    env.reset(options={"task_id": "open-notes"})
    with pytest.raises(SiteDied, match="the site stopped"):
        env.step(tool_call("goto", url="/crash-slowly"))


def test_a_site_that_dies_in_a_rollout_aborts_only_that_episode(tmp_path, smol_tokenizer):
    from tests.test_rollout import run

    register_site("TestNotes-v0", write_site(tmp_path))
    crash = tool_call("goto", url="/crash")
    trajs, _ = run(
        smol_tokenizer, respond=lambda msgs: crash, horizon=3, n=1, env_id="agentgym/TestNotes-v0", max_new_tokens=64
    )
    assert trajs[0].end_reason == "aborted" and "the site stopped" in trajs[0].error


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "a", "instruction": "x"}', r"tasks.jsonl:2: check must be"),
        ('{"id": "a", "instruction": "x", "check": {"url": "("}}', r"tasks.jsonl:2: url: '\(' is not a regular"),
        ('{"id": "a", "instruction": "x", "check": {"answer": "1"}, "colour": 1}', r"tasks.jsonl:2: unknown keys"),
        ('{"id": "a", "instruction": "x", "check": {"function": "nope:f"}}', r"tasks.jsonl:2: cannot import"),
        ("not json", r"tasks.jsonl:2: not JSON"),
    ],
)
def test_a_malformed_task_file_is_an_error_naming_the_file_and_line(tmp_path, line, message):
    path = write_site(tmp_path)
    (tmp_path / "tasks.jsonl").write_text(json.dumps(TASKS[0]) + "\n" + line + "\n")
    with pytest.raises(TaskFileError, match=message):
        SiteEnv(path)


def test_a_site_command_that_never_gets_ready_says_so_with_its_output(tmp_path):
    path = write_site(tmp_path, command="{python} -c \"print('boom'); raise SystemExit(4)\"")
    env = SiteEnv(path)
    with pytest.raises(RuntimeError, match=r"exited with status 4 .*boom"):
        env.reset(options={"task_id": "open-notes"})
    env.close()
