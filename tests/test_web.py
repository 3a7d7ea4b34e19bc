"""The web envs in a real Chromium: episodes, errors, crashes, isolation and budgets."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agentgym.envs.web.env import WebShopEnv, WebTrackerEnv
from agentgym.envs.web.oracle import WebOracle, tool_call
from agentgym.envs.web.snapshot import find_ref
from gymnasium.utils.env_checker import check_env

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def shop():
    env = WebShopEnv()
    yield env
    env.close()


@pytest.fixture(scope="module")
def tracker():
    env = WebTrackerEnv()
    yield env
    env.close()


def play(env, task, plan=None):
    """Run the oracle (optionally on a changed plan); return (observation, info)."""
    oracle = WebOracle(task)
    if plan is not None:
        oracle.plan = plan
    obs, info = env.reset(options={"task_id": task.id})
    done = truncated = False
    while not (done or truncated):
        obs, _, done, truncated, info = env.step(oracle.act(obs))
    return obs, info


def shortest_per_template(env):
    best = {}
    for task in env.tasks("test"):
        kind = task.metadata["template"]
        if kind not in best or task.min_turns < best[kind].min_turns:
            best[kind] = task
    return list(best.values())


def call(env, name, **arguments):
    return env.step(tool_call(name, **arguments))


@pytest.mark.parametrize("cls", [WebShopEnv, WebTrackerEnv])
def test_check_env_passes(cls):
    env = cls()
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.parametrize("env_name", ["shop", "tracker"])
def test_oracle_reading_the_outline_solves_a_task_of_every_template(env_name, request):
    env = request.getfixturevalue(env_name)
    for task in shortest_per_template(env):
        obs, info = play(env, task)
        assert info["success"], f"{task.id}: {obs}"
        assert info["turn"] == task.min_turns, task.id


def test_oracle_solves_a_thirty_step_task(tracker):
    task = next(t for t in tracker.tasks("test") + tracker.tasks("train") if t.min_turns >= 30)
    obs, info = play(tracker, task)
    assert info["success"], obs


@pytest.mark.parametrize("env_name", ["shop", "tracker"])
def test_wrong_answers_fail_information_tasks(env_name, request):
    env = request.getfixturevalue(env_name)
    for task in shortest_per_template(env):
        if task.metadata["kind"] == "info":
            obs, info = play(env, task, [{"op": "answer", "text": "Sabre & Co 9999"}])
            assert not info["success"] and "not solved" in obs, task.id


def _skip_last_click(task):
    plan = task.metadata["plan"]
    last = max(i for i, step in enumerate(plan) if step["op"] == "click")
    return plan[:last] + plan[last + 1 :]


def test_purchase_without_placing_the_order_fails(shop):
    task = next(t for t in shop.tasks("test") if t.metadata["template"] == "buy_one")
    obs, info = play(shop, task, _skip_last_click(task))
    assert not info["success"] and "expected exactly one new order, found 0" in obs


def test_purchase_in_the_wrong_size_fails(shop):
    from agentgym.envs.web.apps.shop_data import catalogue

    def other_size(task):
        (product_id, size, _, _), *_ = task.metadata["expect"]["lines"]
        return next((s for s in catalogue(0).product(product_id).sizes if s != size), None)

    task = next(t for t in shop.tasks("test") if t.metadata["template"] == "buy_one" and other_size(t))
    size = other_size(task)
    plan = [dict(s, option=size) if s["op"] == "select" and s["name"] == "Size" else s for s in task.metadata["plan"]]
    obs, info = play(shop, task, plan)
    assert not info["success"] and "exactly the asked products" in obs


def test_leaving_one_issue_open_fails_a_close_task(tracker):
    task = next(t for t in tracker.tasks("test") if t.metadata["template"] == "close_mine")
    obs, info = play(tracker, task, _skip_last_click(task))
    assert not info["success"] and "not in the expected state" in obs


def test_missing_ref_is_reported_at_once(shop):
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    start = time.perf_counter()
    obs, _, done, _, _ = call(shop, "click", ref="e999")
    assert time.perf_counter() - start < 0.5
    assert "no element with ref e999" in obs and not done


def test_goto_to_an_outside_address_is_refused(shop):
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    obs, *_ = call(shop, "goto", url="https://example.com/")
    assert "can only reach the local site" in obs


def test_relative_goto_opens_a_page_of_the_site(shop):
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    obs, *_ = call(shop, "goto", url="/orders")
    assert "Title: Your orders" in obs and "Order #1001" in obs


def test_requests_to_other_servers_are_blocked_even_on_loopback(shop):
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
        # A page link to another server, followed by the agent: the browser must not reach it.
        shop.tab.page.evaluate(
            f"document.querySelector('footer a').href = 'http://127.0.0.1:{other.server_address[1]}/secret'"
        )
        obs, *_ = call(shop, "click", ref=find_ref(obs, "link", "Help centre"))
    finally:
        other.shutdown()
        other.server_close()
    assert hits == []
    assert "could not be loaded: only the local site" in obs


def test_outside_link_gives_a_clear_observation_and_back_returns(shop):
    obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
    obs, *_ = call(shop, "click", ref=find_ref(obs, "link", "Help centre"))
    assert "every other address is blocked" in obs
    obs, *_ = call(shop, "back")
    assert "Title: Welcome" in obs


def test_crashed_page_is_reopened_with_a_clear_observation(shop):
    obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
    obs, *_ = call(shop, "goto", url="/orders")
    with pytest.raises(Exception, match="ERR_ABORTED"):
        shop.tab.page.goto("chrome://crash")
    obs, _, done, _, _ = call(shop, "click", ref=find_ref(obs, "link", "Order #1002"))
    assert "The page crashed and was reopened" in obs and "Title: Your orders" in obs and not done
    obs, *_ = call(shop, "click", ref=find_ref(obs, "link", "Order #1001"))
    assert "Title: Order #1001" in obs


def _browser_pids():
    """Chromium browser processes started by this test process (children of its driver)."""
    found, frontier = [], [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid != parent:
                    continue
                with open(f"/proc/{entry}/cmdline") as f:
                    cmdline = f.read().split("\0")
            except (OSError, IndexError, ValueError):
                continue
            frontier.append(int(entry))
            if "--remote-debugging-pipe" in cmdline:
                found.append(int(entry))
    return found


def test_browser_is_relaunched_after_being_killed(shop):
    task = min(shop.tasks("test"), key=lambda t: t.min_turns)
    shop.reset(options={"task_id": task.id})
    pids = _browser_pids()
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    time.sleep(0.3)
    obs, info = play(shop, task)
    assert info["success"], obs
    assert _browser_pids() and _browser_pids() != pids


def test_a_context_per_episode_leaks_no_cookies(tracker):
    task = next(t for t in tracker.tasks("test") if t.metadata["template"] == "count")
    play(tracker, task)
    assert tracker.tab.context.cookies()  # logged in during the episode
    obs, _ = tracker.reset(options={"task_id": task.id})
    assert tracker.tab.context.cookies() == []
    obs, *_ = call(tracker, "goto", url="/issues")
    assert "Title: Log in" in obs


def test_database_is_fresh_each_episode(shop):
    task = next(t for t in shop.tasks("test") if t.metadata["template"] == "buy_one")
    assert play(shop, task)[1]["success"]
    shop.reset(options={"task_id": task.id})
    obs, *_ = call(shop, "goto", url="/orders")
    assert "Order #1007" not in obs and "Order #1006" in obs


def test_concurrent_episodes_in_one_thread_do_not_collide(shop):
    other = WebShopEnv()
    try:
        task = next(t for t in shop.tasks("test") if t.metadata["template"] == "buy_one")
        other.reset(options={"task_id": task.id})
        assert play(shop, task)[1]["success"]
        obs, *_ = other.step(tool_call("goto", url="/orders"))
        assert "Order #1007" not in obs
    finally:
        other.close()


def test_long_outline_is_cut_with_a_note_and_scroll_shows_the_rest():
    env = WebShopEnv(max_obs_chars=600)
    try:
        obs, _ = env.reset(options={"task_id": env.tasks("test")[0].id})
        assert "scroll down to see them" in obs and 'link "Kitchen"' not in obs
        seen = obs
        for _ in range(20):
            obs, *_ = env.step(tool_call("scroll", direction="down"))
            seen += obs
            if "cannot scroll down" in obs:
                break
        assert 'link "Kitchen"' in seen
        obs, *_ = env.step(tool_call("scroll", direction="up"))
        assert "lines above are not shown" in obs or "Title: Welcome" in obs
    finally:
        env.close()


def test_select_with_an_unknown_option_lists_the_options(shop):
    obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
    obs, *_ = call(shop, "select", ref=find_ref(obs, "combobox", "Category"), option="Spaceships")
    assert "has no option 'Spaceships'" in obs and "'Shoes'" in obs


def test_stepping_from_another_thread_fails_with_a_clear_message(shop):
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    errors = []

    def step():
        try:
            shop.step(tool_call("goto", url="/cart"))
        except RuntimeError as exc:
            errors.append(str(exc))

    worker = threading.Thread(target=step)
    worker.start()
    worker.join()
    assert errors and "bound to the thread that started it" in errors[0]


def test_a_client_gone_mid_response_leaves_no_traceback_but_real_errors_do(capsys):
    from agentgym.envs.web.server import get_server

    httpd = get_server().httpd
    for exc, printed in ((BrokenPipeError(32, "Broken pipe"), False), (ValueError("a bug"), True)):
        try:
            raise exc
        except Exception:
            httpd.handle_error(None, ("127.0.0.1", 1))
        assert bool(capsys.readouterr().err.strip()) == printed


def test_web_episodes_run_in_the_local_pools_env_threads_and_a_new_thread_gets_its_own_browser(smol_tokenizer):
    """Evaluation and training step envs on worker threads (so a hung step can be
    abandoned); each such thread drives a browser of its own."""
    import gymnasium

    from agentgym.policy import SamplingParams, ScriptedPolicy
    from agentgym.rollout import EpisodeSpec, RolloutOptions, RolloutPool, env_maker

    env_id = "agentgym/WebShop-v0"
    tasks = gymnasium.make(env_id).unwrapped.tasks("test")[:2]

    specs = [EpisodeSpec(t.id, 30) for t in tasks]
    for _ in range(2):  # the second pool's thread is a new one: it starts its own browser
        with RolloutPool(env_maker(env_id), env_id, step_timeout_s=60, max_concurrent=2) as pool:
            trajs = pool.run(
                ScriptedPolicy(smol_tokenizer, WebOracle(tasks)), specs, SamplingParams(256), RolloutOptions(256, 16384)
            )
        assert [t.end_reason for t in trajs] == ["success", "success"], [t.error for t in trajs]


@pytest.fixture
def listeners():
    """A TCP and a UDP socket on loopback that count what reaches them."""
    import socket

    tcp, udp = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (tcp, udp):
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.1)
    tcp.listen(8)
    hits = {"tcp": 0, "udp": 0}
    stop = threading.Event()

    def count():
        while not stop.is_set():
            for s, kind in ((tcp, "tcp"), (udp, "udp")):
                try:
                    s.accept() if kind == "tcp" else s.recvfrom(4096)
                    hits[kind] += 1
                except OSError:
                    pass

    thread = threading.Thread(target=count, daemon=True)
    thread.start()
    yield tcp.getsockname()[1], udp.getsockname()[1], hits
    stop.set()
    thread.join()
    tcp.close()
    udp.close()


def test_page_websockets_never_reach_another_server(shop, listeners):
    tcp_port, _, hits = listeners
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    shop.tab.page.evaluate(
        f"""() => new Promise(done => {{
            const ws = new WebSocket('ws://127.0.0.1:{tcp_port}/');
            ws.onerror = ws.onopen = () => done(); setTimeout(done, 1500);
        }})"""
    )
    time.sleep(0.3)
    assert hits["tcp"] == 0


def test_page_webrtc_sends_no_udp(shop, listeners):
    _, udp_port, hits = listeners
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    result = shop.tab.page.evaluate(
        f"""async () => {{
            try {{
                const pc = new RTCPeerConnection({{iceServers: [{{urls: 'stun:127.0.0.1:{udp_port}'}}]}});
                pc.createDataChannel('x');
                await pc.setLocalDescription(await pc.createOffer());
                await new Promise(done => setTimeout(done, 1500));
                return 'created';
            }} catch (e) {{ return String(e); }}
        }}"""
    )
    time.sleep(0.3)
    assert hits["udp"] == 0 and "RTCPeerConnection is not a constructor" in result


def test_page_service_workers_are_never_registered(shop):
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    tab = shop.tab
    # A service worker script on the site itself (a site could serve one): it would outlive the page.
    tab.context.route(
        tab.origin + "/sw.js",
        lambda route: route.fulfill(content_type="text/javascript", body="self.onfetch = () => {};"),
    )
    state = tab.page.evaluate(
        """async () => {
            const reg = await navigator.serviceWorker.register('/sw.js').catch(e => null);
            await new Promise(done => setTimeout(done, 1000));
            return {registered: !!reg, count: (await navigator.serviceWorker.getRegistrations()).length};
        }"""
    )
    assert state == {"registered": False, "count": 0} and tab.context.service_workers == []


def _page_with_an_image_that_never_loads(env):
    """A page of the site whose `load` event never comes: its image's request is held."""
    tab = env.tab
    html = "<title>Slow</title><h1>Slow page</h1><img src='/never.png' alt='never'>"
    tab.context.route(tab.origin + "/slow", lambda route: route.fulfill(content_type="text/html", body=html))
    tab.context.route(tab.origin + "/never.png", lambda route: None)  # held: never answered


def test_goto_observes_the_page_once_parsed_without_waiting_for_its_images(shop):
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    _page_with_an_image_that_never_loads(shop)
    obs, *_ = call(shop, "goto", url="/slow")
    assert "Title: Slow" in obs and 'heading "Slow page"' in obs


def test_back_observes_the_page_once_parsed_without_waiting_for_its_images(shop):
    shop.reset(options={"task_id": shop.tasks("test")[0].id})
    _page_with_an_image_that_never_loads(shop)
    call(shop, "goto", url="/slow")
    call(shop, "goto", url="/orders")
    obs, *_ = call(shop, "back")
    assert "Title: Slow" in obs and 'heading "Slow page"' in obs


def _same_document(env):
    """Mark the tab's document; `_still_same_document` tells whether a later one is it."""
    env.tab.page.evaluate("window.agentgymTestMark = 1")


def _still_same_document(env):
    return env.tab.page.evaluate("window.agentgymTestMark") == 1


def _refless(obs):
    return re.sub(r"\[ref=(?:f\d+)?e\d+\]", "[ref]", obs)  # refs are numbered per document and snapshot


def test_a_link_of_the_site_updates_the_page_in_place_and_shows_what_loading_it_shows(shop):
    obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
    _same_document(shop)
    obs, *_ = call(shop, "click", ref=find_ref(obs, "link", "Orders"))
    assert _still_same_document(shop)
    loaded, *_ = call(shop, "goto", url="/orders")
    assert not _still_same_document(shop)
    assert "Title: Your orders" in obs and _refless(obs) == _refless(loaded).replace('name="goto"', 'name="click"')


def test_a_filter_form_updates_the_page_in_place_at_the_address_of_its_query(shop):
    obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
    _same_document(shop)
    obs, *_ = call(shop, "select", ref=find_ref(obs, "combobox", "Category"), option="Hats")
    obs, *_ = call(shop, "click", ref=find_ref(obs, "button", "Apply"))
    assert _still_same_document(shop)
    assert "/search?q=&category=Hats&colour=&max_price=&sort=relevance" in obs and "Title: Search results" in obs
    assert "15 results" in obs


def test_a_form_post_updates_the_page_in_place_at_the_address_it_redirects_to(tracker):
    obs, _ = tracker.reset(options={"task_id": tracker.tasks("test")[0].id})
    _same_document(tracker)
    obs, *_ = call(tracker, "type", ref=find_ref(obs, "textbox", "Username"), text="alice")
    obs, *_ = call(tracker, "type", ref=find_ref(obs, "textbox", "Password"), text="wrong", submit=True)
    assert _still_same_document(tracker)
    assert "/login?msg=Wrong" in obs and "Wrong username or password." in obs


def test_back_after_an_in_page_update_shows_the_previous_page(shop):
    obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
    obs, *_ = call(shop, "click", ref=find_ref(obs, "link", "Orders"))
    obs, *_ = call(shop, "click", ref=find_ref(obs, "link", "Order #1002"))
    assert "Title: Order #1002" in obs
    obs, *_ = call(shop, "back")
    assert "Title: Your orders" in obs and obs.split("\n")[1].endswith("/orders")
    obs, *_ = call(shop, "back")
    assert "Title: Welcome" in obs


def test_select_chooses_by_label_ignoring_case_and_fires_the_pages_change_event(shop):
    obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
    shop.tab.page.evaluate(
        "document.addEventListener('change', (e) => { window.changed = e.target.name + '=' + e.target.value })"
    )
    obs, *_ = call(shop, "select", ref=find_ref(obs, "combobox", "Category"), option="hats")
    assert shop.tab.page.evaluate("window.changed") == "category=Hats"
    assert 'option "Hats" [selected]' in obs


def test_select_in_a_disabled_drop_down_says_so_at_once(shop):
    obs, _ = shop.reset(options={"task_id": shop.tasks("test")[0].id})
    shop.tab.page.evaluate("document.querySelector('select[name=category]').disabled = true")
    obs, _, done, _, _ = call(shop, "select", ref=find_ref(obs, "combobox", "Category"), option="Hats")
    assert "is disabled" in obs and not done
