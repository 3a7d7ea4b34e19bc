"""WebEnv: real web apps in a real browser, seen through the accessibility outline.

Each episode gets a fresh browser context (no cookies or storage from earlier episodes)
and a fresh copy of the app's database, served by the process's loopback server. The
agent sees the page's URL, title and outline (elements labelled `[ref=eN]`) and acts
with click/type/select/scroll/goto/back tools; `<answer>` ends the episode, and the task
is checked against the answer or against the database.

Playwright's sync API is thread-bound: create and step every web env of a process from
one thread, outside any running asyncio loop (see `agentgym.envs.web.browser`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from agentgym.envs.web.apps.shop import ShopApp
from agentgym.envs.web.apps.tracker import TrackerApp
from agentgym.envs.web.browser import PARSED, BrowserTab, TabRecovered, check_thread
from agentgym.envs.web.server import SESSION_HEADER, App, get_server
from agentgym.envs.web.snapshot import Outline
from agentgym.envs.web.tasks import shop as shop_tasks
from agentgym.envs.web.tasks import tracker as tracker_tasks

from agentgym.env import Outcome, Task
from agentgym.tool_env import ToolEnv, ToolError
from agentgym.tools import tool

__all__ = ["WebEnv", "WebShopEnv", "WebTrackerEnv"]


#: Choose the option of a <select> whose label (or else value) is `wanted`, ignoring case, and
#: fire the events a user's choice fires; report the options when there is no such one.
_SELECT = """(e, wanted) => {
  if (e.tagName !== "SELECT") return {};
  const options = [...e.options], w = wanted.trim().toLowerCase();
  const found = options.find((o) => o.label.trim().toLowerCase() === w) || options.find((o) => o.value.toLowerCase() === w);
  const result = {options: options.map((o) => o.label), selected: found ? found.label : null, disabled: e.disabled};
  if (!found || e.disabled) return result;
  e.value = found.value;
  e.dispatchEvent(new Event("input", {bubbles: true, composed: true}));
  e.dispatchEvent(new Event("change", {bubbles: true}));
  return result;
}"""


class WebEnv(ToolEnv):
    """A web app in Chromium, driven through its accessibility outline (base class).

    Args:
        max_obs_chars: budget of the outline shown in one observation (~4 characters a
            token); a longer outline is cut, with a note, and `scroll` shows the rest.
        action_timeout_ms: how long an action waits for its element before it fails.
        data_seed: seed of the app's content (products, issues).
        **kwargs: `TextEnv` arguments (max_turns, split, task_seed, render_mode).
    """

    default_max_turns = 40
    app: ClassVar[App]
    #: Where an episode starts, relative to the site.
    start_path: ClassVar[str] = "/"
    #: The module with the app's `make_tasks(split, data_seed, task_seed)` and `grade(...)`.
    task_module: ClassVar[Any]

    def __init__(self, max_obs_chars: int = 8000, action_timeout_ms: int = 2000, data_seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if max_obs_chars < 200:
            raise ValueError(f"max_obs_chars must be >= 200 to show anything useful, got {max_obs_chars}")
        if action_timeout_ms < 100:
            raise ValueError(f"action_timeout_ms must be >= 100, got {action_timeout_ms}")
        self.max_obs_chars = max_obs_chars
        self.action_timeout_ms = action_timeout_ms
        self.data_seed = data_seed
        self.tab: BrowserTab | None = None
        self.token: str | None = None
        self.db_path = None
        self.outline: Outline | None = None
        self.offset = 0
        self._outline_url = ""

    def make_tasks(self, split: str) -> list[Task]:
        return self.task_module.make_tasks(split, self.data_seed, self.task_seed)

    # ------------------------------------------------------------ episode

    def setup(self, task: Task) -> str:
        check_thread()
        self._release()
        server = get_server()
        self.token, self.db_path = server.open_session(self.app, self.data_seed)
        self.tab = BrowserTab(server.origin, {SESSION_HEADER: self.token}, self.action_timeout_ms)
        self.tab.run("opening the site", lambda: self.tab.goto(server.origin + self.start_path))
        self.outline, self.offset = None, 0
        return f"{task.instruction}\n\n{self.observe()}"

    def close(self) -> None:
        self._release()
        super().close()

    def _release(self) -> None:
        if self.tab is not None:
            self.tab.close()
            self.tab = None
        if self.token is not None:
            get_server().close_session(self.token)
            self.token = None

    def observe(self) -> str:
        """The current page: URL, title and the outline window, with notes on what was cut."""
        tab = self._tab()
        note = ""
        try:
            url, title, tree = tab.read()
        except Exception as exc:
            if not tab.broken(exc):
                raise
            note = tab.recover() + "\n"
            url, title, tree = tab.read()
        if url != self._outline_url:
            self.offset = 0
        self._outline_url = url
        self.outline = Outline(tree, self.max_obs_chars)
        if url.startswith("chrome-error://"):
            note += (
                f"This page could not be loaded: only the local site {tab.origin}/ is reachable, every other "
                "address is blocked. Use back() or goto a local path.\n"
            )
        return f"{note}URL: {url}\nTitle: {title}\n{self.outline.render(self.offset)}"

    def _tab(self) -> BrowserTab:
        if self.tab is None:
            raise RuntimeError("no episode is running: call reset() first")
        self.tab.check_thread()
        return self.tab

    def _act(self, what: str, action: Callable[[], object]) -> str:
        tab = self._tab()
        try:
            tab.run(what, action)
        except TabRecovered as exc:
            raise ToolError(f"{exc}\n{self.observe()}") from None
        return self.observe()

    def _act_only(self, what: str, action: Callable[[], object]) -> None:
        try:
            self._tab().run(what, action)
        except TabRecovered as exc:
            raise ToolError(f"{exc}\n{self.observe()}") from None

    def _locate(self, ref: str):
        return self._tab().locate(ref, self.outline.refs if self.outline else set())

    def on_answer(self, answer: str) -> Outcome:
        db = sqlite3.connect(self.db_path)
        try:
            success, why = self.task_module.grade(self.current_task, answer, db, self.data_seed)
        finally:
            db.close()
        verdict = "The task is solved." if success else f"The task is not solved: {why}."
        return Outcome(f"Answer received. {verdict}", reward=float(success), terminated=True, success=success,
                       info={"check": why})  # fmt: skip

    # ------------------------------------------------------------ tools

    @tool
    def click(self, ref: str) -> str:
        """Click an element (link, button, checkbox...) of the page.

        Args:
            ref: The element's label in the page outline, like e12.
        """
        ref, element = self._locate(ref)
        # force: skip the wait for the element to be stable over two animation frames (~30 ms);
        # these pages have no animations, and a missing or hidden element still fails.
        return self._act(f"click {ref}", lambda: element.click(force=True))

    @tool(name="type")
    def type_text(self, ref: str, text: str, submit: bool = False) -> str:
        """Replace the text of an input field, and optionally press Enter to submit its form.

        Args:
            ref: The field's label in the page outline, like e7.
            text: The text to put in the field.
            submit: Press Enter afterwards (submits the form, e.g. runs a search or logs in).
        """
        ref, element = self._locate(ref)

        def fill() -> None:
            element.fill(text)
            if submit:
                element.press("Enter")

        return self._act(f"type into {ref}", fill)

    @tool
    def select(self, ref: str, option: str) -> str:
        """Choose an option of a drop-down list (combobox).

        Args:
            ref: The drop-down's label in the page outline, like e9.
            option: The option's visible text, as listed in the outline.
        """
        ref, element = self._locate(ref)
        result: dict[str, Any] = {}
        # Checked and chosen in one round trip: a separate read of the options cost one more.
        self._act_only(f"select in {ref}", lambda: result.update(element.evaluate(_SELECT, option)))
        if "options" not in result:
            raise ToolError(f"{ref} is not a drop-down list: use click or type on it instead.")
        if result.get("selected") is None:
            listed = ", ".join(repr(label) for label in result["options"])
            raise ToolError(f"{ref} has no option {option!r}; its options are: {listed}.")
        if result.get("disabled"):
            raise ToolError(f"{ref} is disabled: it cannot be changed now.")
        return self.observe()

    @tool
    def scroll(self, direction: Literal["up", "down"]) -> str:
        """Scroll the page to see the part of its outline that was cut from the observation.

        Args:
            direction: "down" or "up".
        """
        tab = self._tab()
        if self.outline is not None:
            move = self.outline.page_down if direction == "down" else self.outline.page_up
            new = move(self.offset)
            if new == self.offset:
                raise ToolError(
                    f"cannot scroll {direction}: the outline already shows its {'end' if direction == 'down' else 'start'}."
                )
            self.offset = new
        sign = 1 if direction == "down" else -1
        return self._act(
            f"scroll {direction}", lambda: tab.page.evaluate(f"window.scrollBy(0, {sign} * window.innerHeight * 0.8)")
        )

    @tool
    def goto(self, url: str) -> str:
        """Open an address of the site.

        Args:
            url: A path like /cart, or a full address on the same site.
        """
        tab = self._tab()
        target = tab.resolve(url)
        return self._act(f"goto {url}", lambda: tab.goto(target))

    @tool
    def back(self) -> str:
        """Go back to the previous page."""
        tab = self._tab()
        tab.run("back", lambda: tab.page.go_back(wait_until=PARSED))
        if tab.page.url == "about:blank":  # the tab's first entry: there was no previous page
            tab.run("back", lambda: tab.page.go_forward(wait_until=PARSED))
            # The forward navigation made a new document: refresh the refs before reporting.
            raise ToolError(f"there is no previous page in this tab.\n{self.observe()}")
        return self.observe()


class WebShopEnv(WebEnv):
    """An online shop in a real browser: search, filter, compare, and buy with a saved card."""

    app = ShopApp()
    task_module = shop_tasks


class WebTrackerEnv(WebEnv):
    """An issue tracker with a login in a real browser: find, create, edit, label and close issues."""

    app = TrackerApp()
    start_path = "/login"
    task_module = tracker_tasks
