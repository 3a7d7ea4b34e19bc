"""The README's screenshot of `agentgym view`: an episode of a GuessNumber evaluation (the
same trajectories bench/view.py replicates), opened in Chromium.

    python bench/view_screenshot.py          # writes bench/figures/view_episode.png
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

from view import real_trajectories

HERE = Path(__file__).resolve().parent


def main() -> None:
    from agentgym.envs.web.browser import CHROMIUM, LAUNCH_ARGS
    from playwright.sync_api import sync_playwright

    from agentgym.trajectory import load_trajectories
    from agentgym.view import Viewer, make_server

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "quickstart_eval"
        path = real_trajectories(run)
        trajs = load_trajectories(path)
        # An episode that wasted a turn and then found the number: invalid action, observations, success.
        i = next(k for k, t in enumerate(trajs) if t.invalid_actions and t.success and t.turns >= 4)
        server = make_server(Viewer([run], cache=Path(tmp) / "cache"))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/r/0/trajectories.jsonl?episode={i}"
        out = HERE / "figures" / "view_episode.png"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=list(LAUNCH_ARGS))
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(url)
            page.screenshot(path=str(out), full_page=False)
            browser.close()
        server.shutdown()
    print(f"wrote {out} (episode {i})", file=sys.stderr)


if __name__ == "__main__":
    main()
