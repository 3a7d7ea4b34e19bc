"""`agentgym view`: runs, the episode table, one episode, its tokens and deep links, in a
real Chromium; model output shown as text, never run; nothing outside the served paths."""

import csv
import http.client
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

import agentgym
from agentgym import Outcome, Task, TextEnv
from agentgym.config import EvalConfig, load_config
from agentgym.eval import evaluate
from agentgym.policy import ScriptedPolicy
from agentgym.trajectory import load_trajectories, save_trajectories
from agentgym.view import EpisodeIndex, Viewer, make_server
from tests.test_rollout import bisect
from tests.test_train_support import tiny_config

INJECTED = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


_starts = itertools.count()


def agent(msgs):
    """Bisection, but every third episode's first reply is an injection attempt."""
    if not any(m["role"] == "assistant" for m in msgs) and next(_starts) % 3 == 0:
        return INJECTED
    return bisect(msgs)


class LogprobPolicy(ScriptedPolicy):
    """Scripted replies with made-up log-probs (-0.0, -0.5, -1.0, ... per token), so the
    token view has a heat map to draw."""

    def generate(self, prompts, params, messages=None):
        out = super().generate(prompts, params, messages)
        for g in out:
            g.logprobs = [-0.5 * (k % 6) for k in range(len(g.token_ids))]
        return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, smol_tokenizer):
    root = tmp_path_factory.mktemp("view") / "runs"
    cfg = load_config(
        None,
        EvalConfig,
        [f"output_dir={root / 'eval'}", "env.num_tasks=12", "samples_per_task=2", "horizons=[1,2,3,4]",
         "progress=false"],
    )  # fmt: skip
    evaluate(cfg, LogprobPolicy(smol_tokenizer, agent))
    from agentgym.trainers import build_trainer

    train = tiny_config(root / "train", "steps=2", "eval.at_end=true", "eval.horizons=[1,2]", "eval.num_tasks=4")
    build_trainer(train).train()
    trajs = load_trajectories(root / "eval" / "trajectories.jsonl")
    save_trajectories(trajs, root / "loose" / "episodes.parquet")
    return root


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    cache = tmp_path_factory.mktemp("view-cache")
    viewer = Viewer([runs], cache=cache)
    srv = make_server(viewer)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", cache
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    """This thread's Chromium, shared with the web envs (one Playwright driver per thread:
    a second `sync_playwright()` in a thread that runs one already is refused)."""
    from agentgym.envs.web.browser import shared_browser

    return shared_browser()


def _raw_get(base: str, path: str, method: str = "GET") -> tuple[int, str]:
    """A request with the path exactly as given (a browser or urllib would normalise `..`)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.endheaders()
    resp = conn.getresponse()
    return resp.status, resp.read().decode("utf-8", "replace")


def test_browse_a_run_filter_to_failures_open_an_episode_its_tokens_and_a_deep_link(server, browser, runs):
    base, _ = server
    page = browser.new_page()
    page.goto(base + "/")
    assert page.locator("svg.chart").count() >= 1  # success vs turns of the runs, overlaid
    page.get_by_role("link", name="runs/eval", exact=True).click()
    assert "success vs turns" in page.locator("svg.chart").first.inner_html()
    assert page.locator("table").first.inner_text().count("\n") == 4  # a row per horizon (1-4)
    page.get_by_role("link", name="trajectories.jsonl").click()
    rows = page.locator("#episodes tr")
    assert rows.count() == 1 + 24  # heading + 12 tasks x 2 samples
    page.select_option("select[name=success]", "no")
    page.get_by_role("button", name="filter").click()
    assert "success=no" in page.url
    reasons = page.locator("#episodes tr td:nth-child(5)").all_inner_texts()
    trajs = load_trajectories(runs / "eval" / "trajectories.jsonl")
    assert reasons and "success" not in reasons
    assert len(reasons) == sum(not t.success for t in trajs)
    page.select_option("select[name=end_reason]", "over_turn")
    page.get_by_role("button", name="filter").click()
    assert set(page.locator("#episodes tr td:nth-child(5)").all_inner_texts()) == {"over_turn"}
    # Sorted by turns, most first: the heading is a link.
    page.get_by_role("link", name="turns").click()
    page.get_by_role("link", name="turns ▲").click()
    turns = [int(t) for t in page.locator("#episodes tr td:nth-child(7)").all_inner_texts()]
    assert turns == sorted(turns, reverse=True) and "end_reason=over_turn" in page.url
    # One episode: its conversation turn by turn.
    first = page.locator("#episodes tr td:first-child a").first
    i = int(first.inner_text())
    first.click()
    assert f"episode={i}" in page.url
    traj = trajs[i]
    assert page.locator(".msg").count() == len(traj.messages)
    assert page.locator("#turn-1 .role").inner_text() == "turn 1 · action"
    answer = re.search(r"<answer>(\d+)</answer>", traj.messages[-2]["content"]).group(1)
    assert page.locator(f"#turn-{traj.turns} .call").inner_text() == f"answer: {answer}"
    assert page.locator("dl.meta").inner_text().count(traj.task_id) == 1
    # Its tokens: generated (loss mask 1, heat-mapped by log-prob) and env tokens, decoded.
    page.get_by_role("link", name="tokens").click()
    generated = page.locator(".seg .g")
    assert generated.count() == sum(sum(s.loss_mask) for s in traj.segments)
    assert page.locator(".seg .e").count() == sum(len(s.loss_mask) - sum(s.loss_mask) for s in traj.segments)
    assert "log-prob -0.500" in generated.nth(1).get_attribute("title")
    assert "hsl(" in generated.nth(1).get_attribute("style")
    text = "".join(generated.all_inner_texts())
    assert traj.messages[2]["content"][:10] in text  # the first reply, decoded by the run's tokenizer
    # A deep link to a turn opens the episode scrolled to it.
    deep = f"{base}/r/0/eval/trajectories.jsonl?episode={i}#turn-{traj.turns}"
    page.set_viewport_size({"width": 900, "height": 300})
    page.goto(deep)
    assert page.locator(f"#turn-{traj.turns}").is_visible()
    box = page.locator(f"#turn-{traj.turns}").bounding_box()
    assert box is not None and -1 <= box["y"] < 300  # scrolled into view
    page.close()


def test_a_reply_with_script_is_shown_as_text_and_never_run(server, browser, runs):
    base, _ = server
    trajs = load_trajectories(runs / "eval" / "trajectories.jsonl")
    i = next(k for k, t in enumerate(trajs) if any(m["content"] == INJECTED for m in t.messages))
    url = f"{base}/r/0/eval/trajectories.jsonl?episode={i}"
    status, html = _raw_get(base, url.removeprefix(base))
    assert status == 200 and "<script>document.title" not in html and "&lt;script&gt;document.title" in html
    page = browser.new_page()
    page.goto(url)
    assert page.title() != "pwned"
    assert INJECTED in page.locator(".msg.assistant pre").first.inner_text()
    page.goto(url + "&view=tokens")  # the token view escapes each token's text too
    assert page.title() != "pwned"
    page.close()


def test_paths_outside_the_served_folders_are_refused(server, runs, tmp_path):
    base, _ = server
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    link = runs / "eval" / "escape.txt"
    link.symlink_to(outside)
    try:
        for path in ("/r/0/../../../../etc/passwd", "/r/0/%2e%2e/%2e%2e/etc/passwd", "/r/0/eval/..%2f..%2fx",
                     "/r/0/eval/escape.txt", "/r/7/x", "/r/0//etc/passwd", "/etc/passwd"):  # fmt: skip
            status, body = _raw_get(base, path)
            assert status in (403, 404), path
            assert "secret" not in body and "root:" not in body
        assert _raw_get(base, "/r/0/eval/results.json")[0] == 200
        assert _raw_get(base, "/r/0/eval/results.json", method="POST")[0] == 405  # read-only
    finally:
        link.unlink()


def test_the_index_is_cached_outside_the_run_folder_and_rebuilt_when_the_file_changes(server, runs, tmp_path):
    base, cache = server
    before = sorted(p.name for p in (runs / "eval").iterdir())
    assert _raw_get(base, "/r/0/eval/trajectories.jsonl")[0] == 200
    assert sorted(p.name for p in (runs / "eval").iterdir()) == before  # the server wrote nothing there
    assert list(cache.glob("*.npz"))
    copy = tmp_path / "t.jsonl"
    shutil.copy(runs / "eval" / "trajectories.jsonl", copy)
    index = EpisodeIndex.open(copy, cache)
    assert len(index) == 24 and index.episode(5).to_dict() == load_trajectories(copy)[5].to_dict()
    lines = copy.read_text().splitlines()
    copy.write_text("\n".join([lines[0], "not json", *lines[1:3]]) + "\n")
    again = EpisodeIndex.open(copy, cache)
    assert len(again) == 3 and again.skipped == 1  # rebuilt (size and time changed), the damaged line left out
    assert again.episode(2).task_id == json.loads(lines[2])["task_id"]


def test_a_parquet_file_and_a_train_run_are_shown(server, runs):
    base, _ = server
    status, html = _raw_get(base, "/r/0/loose/episodes.parquet?end_reason=success&sort=-turns")
    assert status == 200 and "24 episodes" in html
    trajs = load_trajectories(runs / "loose" / "episodes.parquet")
    status, html = _raw_get(base, "/r/0/loose/episodes.parquet?episode=7")
    assert status == 200 and trajs[7].task_id in html
    status, html = _raw_get(base, "/r/0/train")
    assert status == 200
    for title in ("reward", "success", "invalid actions", "horizon", "evaluations: success vs turns"):
        assert f'aria-label="{title}"' in html
    assert "step-000002" in html  # its evaluation at the end


def test_without_the_runs_tokenizer_the_token_view_shows_ids(server, runs):
    base, _ = server
    other = runs / "no-tokenizer"
    shutil.copytree(runs / "eval", other)
    results = json.loads((other / "results.json").read_text())
    results["config"]["policy"]["model"] = "no-such-org/no-such-model"
    (other / "results.json").write_text(json.dumps(results))
    status, html = _raw_get(base, "/r/0/no-tokenizer/trajectories.jsonl?episode=0&view=tokens")
    assert status == 200 and "could not be loaded offline" in html
    first_id = load_trajectories(other / "trajectories.jsonl")[0].segments[0].prompt_ids[0]
    assert f"[{first_id}]" in html


def test_the_command_serves_on_loopback_and_names_a_missing_path_in_one_line(runs, tmp_path):
    env = {**os.environ, "AGENTGYM_CACHE": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "view", str(runs / "eval")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        status, html = _raw_get(f"http://127.0.0.1:{match.group(1)}", "/")
        assert status == 200 and "eval" in html
    finally:
        proc.terminate()
        proc.wait(10)
    done = subprocess.run(
        [sys.executable, "-m", "agentgym.cli", "view", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no such file or folder" in done.stderr


class ShelfEnv(TextEnv):
    """Each reply puts an item on a shelf; info counts them and, at the 3rd turn, carries a
    value too large to keep."""

    default_max_turns = 4

    def make_tasks(self, split):
        return [Task(f"{split}-0", "Fill the shelf.", split)]

    def setup(self, task):
        return task.instruction

    def transition(self, action):
        t = self.turn + 1  # this turn, from 1
        info = {"items": t // 2, "shelf": "same every turn"}  # items: 0, 1, 1, 2
        if t == 3:
            info["dump"] = "x" * 5000
        return Outcome("Done." if t == 4 else "More.", terminated=t == 4, success=t == 4, info=info)


agentgym.register("TestShelf-v0", f"{__name__}:ShelfEnv")


def test_each_turn_records_what_its_info_changed_and_the_episode_page_shows_it(smol_tokenizer, tmp_path):
    from tests.test_rollout import run

    (traj,), _ = run(smol_tokenizer, respond=lambda msgs: "put", horizon=4, n=1, env_id="agentgym/TestShelf-v0")
    assert traj.turns == 4 and traj.schema_version >= 3
    # Turn 1 records everything but the fields kept elsewhere; later turns only what changed.
    assert traj.turn_info[0] == {"items": 0, "shelf": "same every turn"}
    assert traj.turn_info[1] == {"items": 1}
    assert traj.turn_info[2] == {"dump": "<5002 characters of JSON, not kept>"}
    assert traj.turn_info[3] == {"items": 2}
    for name in ("t.jsonl", "t.parquet"):
        save_trajectories([traj], tmp_path / name)
        assert load_trajectories(tmp_path / name)[0].turn_info == traj.turn_info
    # A schema-2 record (no turn_info) still loads, with none.
    row = traj.to_dict()
    del row["turn_info"]
    row["schema_version"] = 2
    (tmp_path / "old.jsonl").write_text(json.dumps(row) + "\n")
    assert load_trajectories(tmp_path / "old.jsonl")[0].turn_info == []
    viewer = Viewer([tmp_path], cache=tmp_path / "cache")
    status, _, html = viewer.render("/r/0/t.jsonl", {"episode": "0"})
    assert status == 200
    assert "info: items: 1" in html.decode() and "5002 characters of JSON" in html.decode()


def test_export_writes_a_static_site_whose_links_all_resolve_within_its_size_cap(runs, tmp_path, browser):
    from agentgym.view.export import export_site

    viewer = Viewer([runs / "eval"], cache=tmp_path / "cache")
    site = tmp_path / "site"
    done = export_site(viewer, site, max_mb=50, log=lambda s: None)
    assert done["left_out"] == 0 and done["pages"] > 24 * 2  # every episode and its tokens
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    for name in files:
        if not name.endswith(".html"):
            continue
        html = (site / name).read_text()
        assert "<form" not in html  # nothing to send a form to
        for href in re.findall(r'href="([^"#]+)', html):
            target = (site / name).parent / href
            assert target.resolve().is_file(), (name, href)
    # It works from file:// in a browser: the table, an episode, its tokens, a deep link.
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    page.get_by_role("link", name="trajectories.jsonl").first.click()
    page.get_by_role("link", name="failed").click()
    assert "success" not in page.locator("#episodes tr td:nth-child(5)").all_inner_texts()
    page.locator("#episodes tr td:first-child a").first.click()
    assert page.locator(".msg").count() > 2
    page.get_by_role("link", name="tokens").click()
    assert page.locator(".seg .g").count() > 0
    page.close()
    # A cap smaller than the site: the summary comes first, the rest is left out, and its
    # links lead to a page that says so.
    small = tmp_path / "small"
    done = export_site(viewer, small, max_mb=0.15, log=lambda s: None)
    assert done["left_out"] > 0 and done["bytes"] <= 150_000
    assert (small / "index.html").exists() and (small / "r/0/trajectories.jsonl/index.html").exists()
    assert "not-exported.html" in (small / "r/0/trajectories.jsonl/index.html").read_text()
    with pytest.raises(FileExistsError, match="is not empty"):
        export_site(viewer, small)


def test_compare_shows_one_tasks_episodes_side_by_side_from_one_file_or_two_runs(server, runs):
    base, _ = server
    trajs = load_trajectories(runs / "eval" / "trajectories.jsonl")
    task = trajs[5].task_id
    mine = [i for i, t in enumerate(trajs) if t.task_id == task]
    status, html = _raw_get(base, f"/r/0/eval/trajectories.jsonl?view=compare&task={task}")
    assert status == 200 and html.count('<dl class="meta">') == 2
    assert all(f"?episode={i}" in html for i in mine[:2])
    # The same task in another run (here the Parquet copy), linked from the page.
    other = "/r/0/loose/episodes.parquet"
    assert f"other={other.replace('/', '%2F')}" in html
    status, html = _raw_get(base, f"/r/0/eval/trajectories.jsonl?view=compare&task={task}&a={mine[1]}&other={other}")
    assert status == 200 and html.count('<dl class="meta">') == 2
    assert f"{other}?episode={mine[0]}" in html and f"?episode={mine[1]}" in html
    status, _ = _raw_get(base, f"/r/0/eval/trajectories.jsonl?view=compare&task={task}&other=/r/0/../../etc/passwd")
    assert status == 403


def test_an_actions_tool_calls_are_shown_with_their_arguments_and_escaped():
    from agentgym.view.episodes import conversation

    reply = '<tool_call>{"name": "search", "arguments": {"query": "<b>x</b>", "k": 3}}</tool_call>'
    traj = load_trajectories_from_messages(reply)
    html = conversation(traj)
    assert "call search(query=&quot;&lt;b&gt;x&lt;/b&gt;&quot;, k=3)" in html and "<b>x</b>" not in html


def load_trajectories_from_messages(reply):
    from agentgym.trajectory import Trajectory

    return Trajectory(
        "e", "t", turns=1, turn_rewards=[0.0],
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "task"},
                  {"role": "assistant", "content": reply}, {"role": "user", "content": "3 results"}],
    )  # fmt: skip


def test_the_table_pages_through_many_episodes_and_an_experiment_shows_its_arms(tmp_path):
    from agentgym.trajectory import Trajectory

    many = [Trajectory("e", f"task-{i:03d}", turns=i % 7, end_reason="failure") for i in range(120)]
    save_trajectories(many, tmp_path / "many" / "trajectories.jsonl")
    rows = [
        {"arm": arm, "seed": seed, "point": 1.0, "steps": 10, "compute_used": 100, "horizon": h,
         "success": 0.1 * h + (0.2 if arm == "long" else 0), "success_ci_low": 0, "success_ci_high": 1, "episodes": 8}
        for arm in ("short", "long") for seed in (0, 1) for h in (1, 2, 3)
    ]  # fmt: skip
    exp = tmp_path / "exp"
    exp.mkdir()
    with open(exp / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (exp / "report.md").write_text("# Experiment: x\n")
    viewer = Viewer([tmp_path], cache=tmp_path / "cache")
    status, _, html = viewer.render("/r/0/many/trajectories.jsonl", {"page": "2"})
    html = html.decode()
    assert status == 200 and "page 3 of 3" in html and html.count("<tr><td><a href") == 20
    assert 'rel="prev"' in html and 'rel="next"' not in html
    _, _, first = viewer.render("/r/0/many/trajectories.jsonl", {})
    assert "page 1 of 3" in first.decode() and first.decode().count("<tr><td><a href") == 50
    status, _, html = viewer.render("/r/0/exp", {})
    html = html.decode()
    assert status == 200 and "experiment run" in html
    assert "short (mean of 2 seeds)" in html and "long (mean of 2 seeds)" in html and "report.md" in html
    _, _, home = viewer.render("/", {})
    assert "exp" in home.decode() and "2 arms" in home.decode()


def test_the_episode_page_names_the_policy_version_of_a_training_rollout(smol_tokenizer, tmp_path):
    from tests.test_rollout import run

    (traj,), _ = run(smol_tokenizer, respond=lambda msgs: "put", horizon=2, n=1, env_id="agentgym/TestShelf-v0")
    save_trajectories([traj], tmp_path / "eval.jsonl")  # outside training: no version
    traj.policy_version = 3
    save_trajectories([traj], tmp_path / "train.jsonl")
    viewer = Viewer([tmp_path], cache=tmp_path / "cache")
    pages = {
        name: viewer.render(f"/r/0/{name}", {"episode": "0"})[2].decode() for name in ("eval.jsonl", "train.jsonl")
    }
    assert "<dt>policy version</dt><dd><span>3</span></dd>" in pages["train.jsonl"]
    assert "policy version" not in pages["eval.jsonl"]
