"""The browser layer: one Chromium per thread that drives web envs, a fresh context per episode.

Playwright's sync API is bound to the thread that started it and cannot run inside a
running asyncio event loop. So each thread that uses a web env gets a browser of its own
(the rollout pool drives all its envs from one thread per worker: one browser each; a
worker that replaces a hung one starts a new browser), and an env must be stepped from
the thread that created it; inside a running event loop it raises a `RuntimeError` that
says so. To run web episodes in parallel cheaply, run several envs in the same thread
(each has its own browser context) or use worker processes.

Every request of a context to anything but the env's own loopback server is aborted,
so pages and agents can reach nothing outside; WebSockets (which request routing does
not see) are refused, service workers blocked, and WebRTC, which sends UDP, is off (the
page has no `RTCPeerConnection`, and Chromium sends no UDP it would not proxy). A tab that crashes is reopened at its
last address; a browser that died is relaunched, at the next episode or action.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Error, Page, Playwright, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from agentgym.tool_env import ToolError

__all__ = ["CHROMIUM", "LAUNCH_ARGS", "PARSED", "SETTLE", "BrowserTab", "TabRecovered", "shared_browser"]

#: Chromium binary (Debian's package); override with AGENTGYM_CHROMIUM.
CHROMIUM = os.environ.get("AGENTGYM_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)  # fmt: skip
#: Run before any page script: WebRTC could reach any host and port over UDP.
_NO_WEBRTC = """
for (const name of ["RTCPeerConnection", "webkitRTCPeerConnection", "RTCDataChannel", "RTCRtpSender",
                    "RTCRtpReceiver", "RTCIceCandidate", "RTCSessionDescription"]) {
  try { delete globalThis[name]; } catch (e) {}
  try { Object.defineProperty(globalThis, name, {value: undefined, configurable: false}); } catch (e) {}
}
"""
_REF = re.compile(r"^(?:f\d+)?e\d+$")
#: Awaited before every observation (see `BrowserTab.settle`); evaluates to the title.
SETTLE = """async () => {
  if (document.readyState === "loading") await new Promise((r) => addEventListener("DOMContentLoaded", r, {once: true}));
  return window.agentgymSettled ? await window.agentgymSettled() : document.title;
}"""
#: What a navigation waits for: the document parsed, which is all the outline reads. The
#: `load` event also waits for images, frames and the like, ~30 ms more on these pages.
PARSED = "domcontentloaded"


class TabRecovered(ToolError):
    """The tab crashed or the browser died during an action; it was reopened (message says how)."""


class _Shared:
    """A thread's Playwright driver and browser."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.playwright: Playwright = sync_playwright().start()
        self.browser: Browser = self._launch()

    def _launch(self) -> Browser:
        if not os.path.exists(CHROMIUM):
            raise RuntimeError(
                f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
                "(or point AGENTGYM_CHROMIUM at a Chromium binary); never `playwright install`."
            )
        return self.playwright.chromium.launch(executable_path=CHROMIUM, args=list(LAUNCH_ARGS))

    def relaunch(self) -> Browser:
        with contextlib.suppress(Error):  # already dead: that is why we relaunch
            self.browser.close()
        self.browser = self._launch()
        return self.browser

    def stop(self) -> None:
        if threading.get_ident() != self.thread:
            return  # the driver can only be stopped from its thread; the OS reaps it at exit
        try:
            self.browser.close()
            self.playwright.stop()
        except Error:
            pass


_by_thread: dict[int, _Shared] = {}  # thread id -> its driver and browser


def _loop_running() -> bool:
    # Checked only before the driver starts: once started, Playwright's own loop runs here.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def check_thread() -> None:
    """Raise a clear `RuntimeError` if the browser cannot be driven from here."""
    if threading.get_ident() not in _by_thread and _loop_running():
        raise RuntimeError(
            "agentgym web envs drive Chromium through Playwright's sync API, which cannot run inside a "
            "running asyncio event loop. Step web envs from a plain thread (e.g. one dedicated "
            "worker thread that owns every web env) or from a worker process."
        )


def shared_browser(relaunch: bool = False) -> Browser:
    """This thread's browser: launched on first use, relaunched if it died (or if asked)."""
    check_thread()
    shared = _by_thread.get(threading.get_ident())
    if shared is None:
        shared = _by_thread[threading.get_ident()] = _Shared()
        atexit.register(shared.stop)  # stops the main thread's; the OS reaps the others at exit
    elif relaunch or not shared.browser.is_connected():
        shared.relaunch()
    return shared.browser


class BrowserTab:
    """One episode's browser context and page, confined to `origin`.

    Args:
        origin: the site, e.g. "http://127.0.0.1:41234": the only one it may reach, with
            `also_allowed`.
        headers: extra HTTP headers sent with every request (the episode's session).
        timeout_ms: how long an action may wait for its element before it fails.
        also_allowed: other origins the page may load from and navigate to (a site's CDN
            on loopback, its API on another port). WebSockets to them pass; to anything
            else they are closed, as every other request is aborted.
    """

    def __init__(self, origin: str, headers: dict[str, str], timeout_ms: int = 2000, also_allowed: Sequence[str] = ()):
        self.origin = origin.rstrip("/")
        self.allowed = [self.origin, *(o.rstrip("/") for o in also_allowed)]
        self.headers = headers
        self.timeout_ms = timeout_ms
        self.crashed = False
        self.last_url = origin + "/"
        self.thread = threading.get_ident()  # its browser's thread: the only one that may drive it
        self.context: BrowserContext
        self.page: Page
        self._open_context()

    def _open_context(self) -> None:
        options = {
            "extra_http_headers": self.headers,
            "viewport": {"width": 1280, "height": 900},
            "service_workers": "block",
        }
        try:
            context = shared_browser().new_context(**options)
        except Error:
            # The browser died without Playwright noticing yet: relaunch once.
            context = shared_browser(relaunch=True).new_context(**options)
        context.add_init_script(_NO_WEBRTC)
        context.route_web_socket(re.compile(".*"), self._web_socket)
        # Only requests that do *not* start with an allowed origin reach the handler (the
        # regex is matched inside the driver), so allowed requests pay no Python round trip.
        allowed = "|".join(re.escape(o + "/") for o in self.allowed)
        context.route(re.compile(f"^(?!{allowed})"), lambda route: route.abort("blockedbyclient"))
        self.context = context
        self._open_page()

    def _web_socket(self, ws: Any) -> None:
        """A WebSocket to an allowed origin (ws:// for http://, wss:// for https://) passes;
        any other is closed before it connects."""
        parts = urllib.parse.urlsplit(ws.url)
        http = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        if f"{http}://{parts.netloc}" in self.allowed:
            ws.connect_to_server()
        else:
            ws.close(code=1008, reason="blocked by agentgym")

    def _open_page(self) -> None:
        self.crashed = False
        self.page = self.context.new_page()
        self.page.set_default_timeout(self.timeout_ms)
        self.page.set_default_navigation_timeout(max(self.timeout_ms, 5000))
        self.page.on("crash", self._on_crash)

    def _on_crash(self, _page: Page) -> None:
        self.crashed = True

    def check_thread(self) -> None:
        """Raise a clear `RuntimeError` when used from another thread than its browser's."""
        if threading.get_ident() != self.thread:
            raise RuntimeError(
                "this episode's tab lives in a browser started by another thread, and Playwright's sync API is "
                "bound to the thread that started it. Reset and step each web env from one thread (several "
                "envs in that thread can run episodes side by side), or use worker processes."
            )

    def close(self) -> None:
        if threading.get_ident() != self.thread:
            return  # only its thread can free it; the browser goes with that thread's driver
        with contextlib.suppress(Error):  # the browser is gone already; nothing to free
            self.context.close()

    # ------------------------------------------------------------ reading

    def url(self) -> str:
        return self.page.url

    def read(self) -> tuple[str, str, str]:
        """(url, title, accessibility snapshot with refs) of the page, once it has settled."""
        title = self.settle()
        tree = self.page.aria_snapshot(mode="ai", timeout=max(self.timeout_ms, 5000))
        url = self.page.url
        if url.startswith(self.origin + "/"):
            self.last_url = url
        return url, title, tree

    def settle(self) -> str:
        """Wait until the page is parsed and has no in-page update pending; return its title.

        One round trip: it also reads the title. A click that starts a navigation returns
        once the new document is committed, maybe before it is parsed; an in-page update
        (see `agentgym.envs.web.html.IN_PAGE`) finishes after the click returns.
        """
        for _ in range(3):
            try:
                return self.page.evaluate(SETTLE)
            except Error as exc:
                if "context was destroyed" not in str(exc):  # a navigation replaced the document: ask it
                    raise
        return self.page.title()

    def broken(self, exc: Exception) -> bool:
        """Whether `exc` means the tab or the browser is gone (rather than a bad action)."""
        text = str(exc)
        return (
            self.crashed
            or self.page.is_closed()
            or not self.context.browser.is_connected()
            or "crashed" in text
            or "has been closed" in text
        )

    def recover(self) -> str:
        """Reopen after a crash at the last good address; return what happened, for the agent."""
        browser = self.context.browser
        if browser is None or not browser.is_connected():
            self._open_context()
            what = "The browser stopped and was restarted (cookies were lost: log in again if the site needs it)."
        else:
            with contextlib.suppress(Error):  # a crashed page may refuse to close; the context frees it
                self.page.close()
            self._open_page()
            what = "The page crashed and was reopened."
        self.goto(self.last_url)
        return f"{what} Now at {self.last_url}."

    def goto(self, url: str) -> None:
        """Open `url`; return once its document is parsed."""
        self.page.goto(url, wait_until=PARSED)

    # ------------------------------------------------------------ acting

    def run(self, what: str, action: Callable[[], object]) -> None:
        """Run one action; turn Playwright failures into messages for the agent."""
        try:
            action()
        except PlaywrightTimeout as exc:
            raise ToolError(
                f"{what} failed: nothing happened within {self.timeout_ms / 1000:g} s ({_first_line(exc)})."
            ) from None
        except Error as exc:
            if self.broken(exc):
                raise TabRecovered(f"{what} failed: {_first_line(exc)}. {self.recover()}") from None
            raise ToolError(f"{what} failed: {_first_line(exc)}.") from None

    def locate(self, ref: str, known: set[str]):
        """The element behind a ref of the latest observation; a clear error if there is none."""
        ref = ref.strip().strip("[]").removeprefix("ref=")
        if not _REF.match(ref):
            raise ToolError(f"{ref!r} is not a ref: use the label of an element in the page outline, like e12.")
        if ref not in known:
            raise ToolError(f"no element with ref {ref} on this page: use a ref from the latest observation.")
        return ref, self.page.locator(f"aria-ref={ref}")

    def resolve(self, url: str) -> str:
        """An absolute URL on an allowed origin, or a `ToolError` for anything outside them."""
        target = urllib.parse.urljoin(self.origin + "/", url.strip())
        parts = urllib.parse.urlsplit(target)
        if f"{parts.scheme}://{parts.netloc}" not in self.allowed:
            raise ToolError(
                f"cannot open {url!r}: this browser can only reach the local site {self.origin}/ "
                "(every other address is blocked). Relative paths like /cart work too."
            )
        return target


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
