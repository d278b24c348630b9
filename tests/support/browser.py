"""A small Chrome DevTools Protocol driver for Flutter (Flet) web apps in headless Chromium.

Launches Debian's `chromium` with every outside address unresolvable, talks CDP over one
WebSocket (the `websockets` sync client), turns on Flutter's semantics tree and reads, clicks
and types through it. All waits are polling loops with deadlines.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.support.processes import kill_tree

T = TypeVar("T")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

# Finds semantics nodes whose label or text matches, returns their centres (visible ones first).
FIND_JS = """
(([selector, needle, exact]) => {
  const host = document.querySelector('flt-semantics-host');
  if (!host) return [];
  const out = [];
  for (const el of host.querySelectorAll(selector)) {
    const parts = [el.getAttribute('aria-label') || '', el.innerText || '',
                   el.getAttribute('placeholder') || ''];
    const input = el.querySelector('input, textarea');
    if (input) parts.push(input.getAttribute('aria-label') || '',
                          input.getAttribute('placeholder') || '');
    const text = parts.join('\\n');
    const hit = exact ? parts.some(p => p.trim() === needle) : text.includes(needle);
    if (!hit) continue;
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) continue;
    out.push({x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height,
              label: text.trim().slice(0, 200), tag: el.tagName.toLowerCase(),
              role: el.getAttribute('role') || ''});
  }
  out.sort((a, b) => (a.w * a.h) - (b.w * b.h));
  return out;
})
"""


class BrowserError(AssertionError):
    """A wait ran out or the browser answered with an error."""


def find_chromium() -> str | None:
    """Return the path of a Chromium executable, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def poll(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call `probe` until it returns something truthy; raise BrowserError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BrowserError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Node:
    """A semantics node found on the page: its centre, size and what it says."""

    x: float
    y: float
    label: str
    tag: str
    role: str
    width: float = 0.0
    height: float = 0.0


@dataclass
class NetworkResponse:
    """A response the page received (from `Network.responseReceived`)."""

    url: str
    status: int
    mime_type: str
    headers: dict[str, str]  # names lower-cased
    request_headers: dict[str, str]  # as sent, names lower-cased (when Chromium reports them)
    request_id: str = ""


@dataclass
class NetworkFailure:
    """A request that failed (from `Network.loadingFailed`): CORS, connection, blocked..."""

    url: str
    error: str
    details: dict[str, Any]


class Tab:
    """One page target driven over its DevTools WebSocket."""

    def __init__(self, ws_url: str) -> None:
        self.ws: ClientConnection = connect(
            ws_url, max_size=64 * 1024 * 1024, open_timeout=20, legacy=True
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.responses: list[NetworkResponse] = []  # while the Network domain is enabled
        self.failures: list[NetworkFailure] = []
        self.finished: set[str] = set()  # request ids whose body arrived in full
        self._requests: dict[str, tuple[str, dict[str, str]]] = {}  # id -> (url, headers)
        self._raw: dict[str, dict[str, Any]] = {}  # id -> the raw request / response headers

    def close(self) -> None:
        """Close the DevTools connection."""
        with contextlib.suppress(Exception):
            self.ws.close()

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result (events that arrive meanwhile are kept)."""
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"no answer to {method} in {timeout}s")
            message = json.loads(self.ws.recv(timeout=remaining))
            if message.get("id") != call_id:
                if "method" in message:
                    self._on_event(message)
                continue
            if "error" in message:
                raise BrowserError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    def _on_event(self, message: dict[str, Any]) -> None:
        """Keep an event; note network requests, responses and failures."""
        self.events.append(message)
        del self.events[:-500]
        method, params = message["method"], message.get("params", {})
        request_id = str(params.get("requestId", ""))
        if method == "Network.requestWillBeSent":
            request = params.get("request", {})
            self._requests[request_id] = (request.get("url", ""), _lower(request.get("headers")))
        elif method == "Network.responseReceived":
            response = params.get("response", {})
            sent = (
                _lower(response.get("requestHeaders"))
                or self._requests.get(request_id, ("", {}))[1]
            )
            self.responses.append(
                NetworkResponse(
                    url=response.get("url", ""), status=int(response.get("status", 0)),
                    mime_type=response.get("mimeType", ""),
                    headers=_lower(response.get("headers")), request_headers=sent,
                    request_id=request_id,
                )
            )  # fmt: skip
        elif method == "Network.loadingFinished":
            self.finished.add(request_id)
        elif method in ("Network.requestWillBeSentExtraInfo", "Network.responseReceivedExtraInfo"):
            self._raw.setdefault(request_id, {})[method.rsplit(".", 1)[1]] = params
        elif method == "Network.loadingFailed":
            url = self._requests.get(request_id, ("?", {}))[0]
            details = {**params, **self._raw.get(request_id, {})}  # what went over the wire
            self.failures.append(NetworkFailure(url, params.get("errorText", ""), details))

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its value (JSON-serialisable)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"JS error: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        """Open `url` in this tab."""
        self.send("Page.enable")
        self.send("Page.navigate", url=url)

    def set_viewport(self, width: int, height: int) -> None:
        """Emulate a window of `width` x `height` CSS pixels."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip

    # --- network -----------------------------------------------------------------------

    def enable_network(self) -> None:
        """Start recording the page's requests, responses and failures (from scratch)."""
        self.responses.clear()
        self.failures.clear()
        self.finished.clear()
        self._requests.clear()
        self._raw.clear()
        self.send("Network.enable")

    def disable_network(self) -> None:
        """Stop recording network traffic."""
        self.send("Network.disable")

    def wait_for_response(self, pattern: str, timeout: float = 30) -> NetworkResponse:
        """Wait until a response whose URL matches the regex `pattern` has fully arrived.

        Needs `enable_network()` first. A request matching `pattern` that failed (a CORS
        refusal, say) ends the wait at once, with Chromium's reason. A CORS preflight
        (`OPTIONS` with `Access-Control-Request-Method`) is not the response waited for.
        """
        regex = re.compile(pattern)

        def probe() -> NetworkResponse | None:
            self.evaluate("0")  # a round trip, so that pending events are read
            for failure in self.failures:
                if regex.search(failure.url):
                    raise BrowserError(
                        f"request {failure.url} failed: {failure.error} {failure.details}"
                    )
            for response in self.responses:
                preflight = "access-control-request-method" in response.request_headers
                arrived = response.request_id in self.finished
                if regex.search(response.url) and arrived and not preflight:
                    return response
            return None

        try:
            return poll(probe, timeout, f"a response from {pattern!r}")
        except BrowserError as exc:
            seen = "\n".join(f"{r.status} {r.url}" for r in self.responses[-30:])
            raise BrowserError(f"{exc}; responses seen:\n{seen}") from None

    # --- file choosers -----------------------------------------------------------------

    def intercept_file_choosers(self) -> None:
        """Catch file dialogs instead of opening them (see `choose_files`)."""
        self.send("Page.enable")
        self.send("Page.setInterceptFileChooserDialog", enabled=True)

    def choose_files(self, paths: list[Path], timeout: float = 30) -> None:
        """Answer the next file dialog the page opens with `paths`.

        Flutter's file picker clicks a hidden `<input type=file>`; with
        `intercept_file_choosers()` on, Chromium reports it (`Page.fileChooserOpened`)
        and the files are set on that input (`DOM.setFileInputFiles`), which fires its
        `change` event as a user's choice would.
        """

        def opened() -> dict[str, Any] | None:
            self.evaluate("0")  # a round trip, so that pending events are read
            for event in list(self.events):
                if event.get("method") == "Page.fileChooserOpened":
                    self.events.remove(event)
                    params: dict[str, Any] = event.get("params", {})
                    return params
            return None

        chooser = poll(opened, timeout, "a file dialog")
        self.send(
            "DOM.setFileInputFiles",
            files=[str(path) for path in paths], backendNodeId=chooser["backendNodeId"],
        )  # fmt: skip

    # --- Flutter semantics -------------------------------------------------------------

    def enable_semantics(self, timeout: float = 60) -> None:
        """Wait for Flutter to start, then switch its semantics tree on."""

        def placeholder() -> dict[str, float] | None:
            rect: dict[str, float] | None = self.evaluate(
                "(() => { const el = document.querySelector('flt-semantics-placeholder');"
                " if (!el) return null; const r = el.getBoundingClientRect();"
                " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
            )
            return rect

        def host_has_nodes() -> bool:
            return bool(
                self.evaluate(
                    "!!document.querySelector('flt-semantics-host flt-semantics')"
                    " && !document.querySelector('flt-semantics-placeholder')"
                )
            )

        rect = poll(placeholder, timeout, "Flutter's semantics placeholder")
        self.evaluate("document.querySelector('flt-semantics-placeholder').click()")
        if not _soon(host_has_nodes, 3):
            self.mouse_click(rect["x"], rect["y"])
        poll(host_has_nodes, timeout, "the semantics tree")

    def text(self) -> str:
        """Return the visible text of the app, read from the semantics tree."""
        value = self.evaluate(
            "(() => { const h = document.querySelector('flt-semantics-host');"
            " if (!h) return '';"
            " const labels = [...h.querySelectorAll('[aria-label]')]"
            "   .map(e => e.getAttribute('aria-label'));"
            " const values = [...h.querySelectorAll('input, textarea')].map(e => e.value);"
            " return [h.innerText, ...labels, ...values].join('\\n'); })()"
        )
        return str(value or "")

    def wait_for_text(self, pattern: str | re.Pattern[str], timeout: float = 30) -> str:
        """Wait until the app's text contains `pattern` (a string or regex); return the text."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        last = ""

        def probe() -> str | None:
            nonlocal last
            last = self.text()
            return last if regex.search(last) else None

        try:
            return poll(probe, timeout, f"text {regex.pattern!r}")
        except BrowserError as exc:
            raise BrowserError(f"{exc}; the page says:\n{last}") from None

    def wait_for_match(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Wait until the regex `pattern` matches the app's text; return the match."""
        text = self.wait_for_text(re.compile(pattern), timeout)
        match = re.search(pattern, text)
        assert match is not None
        return match

    def find(self, needle: str, selector: str = "flt-semantics", exact: bool = False) -> list[Node]:
        """Return the semantics nodes matching `needle` (smallest first)."""
        found = self.evaluate(f"{FIND_JS}({json.dumps([selector, needle, exact])})") or []
        return [
            Node(n["x"], n["y"], n["label"], n["tag"], n["role"], n["w"], n["h"]) for n in found
        ]

    def wait_for_node(
        self, needle: str, selector: str = "flt-semantics", timeout: float = 30, exact: bool = False
    ) -> Node:
        """Wait for a semantics node matching `needle` and return it."""
        nodes = poll(
            lambda: self.find(needle, selector, exact), timeout, f"a node {needle!r} ({selector})"
        )
        return nodes[0]

    def click(self, label: str, timeout: float = 30, exact: bool = False) -> None:
        """Click the button (or other tappable node) labelled `label` at its centre."""
        selector = "flt-semantics[role=button], flt-semantics[flt-tappable], [role=button]"
        node = self.wait_for_node(label, selector, timeout, exact)
        self.mouse_click(node.x, node.y)

    def click_until(self, label: str, expect: str, timeout: float = 30, exact: bool = False) -> str:
        """Click `label` until the text `expect` shows (for idempotent clicks: navigation).

        A click can be lost while Flutter replaces the control under it (a list reloading);
        this clicks again every few seconds until the expected text appears.
        """
        deadline = time.monotonic() + timeout
        while True:
            if expect not in self.text():
                self.click(label, timeout=max(deadline - time.monotonic(), 1), exact=exact)
            try:
                return self.wait_for_text(expect, timeout=min(5, timeout))
            except BrowserError:
                if time.monotonic() > deadline:
                    raise

    def fill(self, label: str, text: str, timeout: float = 30) -> None:
        """Focus the text field labelled `label`, replace its text with `text` and check it.

        Text typed before Flutter attaches its editing strategy to the field's DOM input is
        lost (and later overwritten), so this waits for the strategy's `input` listener first.
        """
        selector = "flt-semantics:has(input), flt-semantics:has(textarea)"
        for _ in range(3):
            node = self.wait_for_node(label, selector, timeout)
            self.mouse_click(node.x, node.y)
            if not _soon(lambda: self._editing(label), 10):
                continue
            self.key_combo("a", modifiers=2)  # Ctrl+A selects what is there
            self.key_combo("Backspace")
            if text:
                self.send("Input.insertText", text=text)
            if _soon(lambda: self.field_value(label) == text and self._editing(label), 5):
                return
        raise BrowserError(f"could not type into {label!r}: it holds {self.field_value(label)!r}")

    def _editing(self, label: str) -> bool:
        """Whether the field labelled `label` has focus with Flutter's text editing attached."""
        if label not in self._focused_label():
            return False
        found = self.send("Runtime.evaluate", expression="document.activeElement")["result"]
        if "objectId" not in found:
            return False
        listeners = self.send("DOMDebugger.getEventListeners", objectId=found["objectId"])
        self.send("Runtime.releaseObject", objectId=found["objectId"])
        return any(item.get("type") == "input" for item in listeners.get("listeners", []))

    def _focused_label(self) -> str:
        return str(
            self.evaluate(
                "(() => { const a = document.activeElement;"
                " return a && (a.tagName === 'INPUT' || a.tagName === 'TEXTAREA')"
                "   ? (a.getAttribute('aria-label') || '') : ''; })()"
            )
        )

    def field_value(self, label: str) -> str | None:
        """Return the text in the field labelled `label` (None when there is none)."""
        value = self.evaluate(
            f"(() => {{ const want = {json.dumps(label)};"
            " for (const e of document.querySelectorAll('flt-semantics-host input,"
            " flt-semantics-host textarea'))"
            "   if ((e.getAttribute('aria-label') || '').includes(want)) return e.value;"
            " return null; })()"
        )
        return None if value is None else str(value)

    # --- raw input and output ----------------------------------------------------------

    def mouse_click(self, x: float, y: float) -> None:
        """Press and release the left mouse button at (x, y)."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def key_combo(self, key: str, modifiers: int = 0) -> None:
        """Press and release one key (`modifiers`: 2 = Ctrl)."""
        codes = {"a": ("KeyA", 65), "Backspace": ("Backspace", 8), "Enter": ("Enter", 13)}
        code, key_code = codes[key]
        common: dict[str, Any] = {"key": key, "code": code, "windowsVirtualKeyCode": key_code}
        self.send("Input.dispatchKeyEvent", type="rawKeyDown", modifiers=modifiers, **common)
        self.send("Input.dispatchKeyEvent", type="keyUp", modifiers=modifiers, **common)

    def screenshot_png(self) -> bytes:
        """Return a PNG of the viewport."""
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the viewport to `path`."""
        data = self.screenshot_png()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


def _lower(headers: dict[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _soon(probe: Callable[[], bool], timeout: float) -> bool:
    try:
        poll(probe, timeout, "it")
    except BrowserError:
        return False
    return True


class Chromium:
    """A headless Chromium process with its own profile, reachable over DevTools."""

    def __init__(self, executable: str, profile: Path, width: int = 1280, height: int = 900):
        self.executable = executable
        self.profile = profile
        self.size = (width, height)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = profile.parent / f"{profile.name}-chromium.log"

    def start(self, timeout: float = 60) -> None:
        """Launch the browser and wait for its DevTools endpoint."""
        self.profile.mkdir(parents=True, exist_ok=True)
        width, height = self.size
        command = [
            self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            f"--window-size={width},{height}", "about:blank",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        active = self.profile / "DevToolsActivePort"

        def port() -> int | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BrowserError(
                    f"chromium exited early:\n{self.log.read_text(errors='replace')}"
                )
            lines = active.read_text().splitlines() if active.exists() else []
            return int(lines[0]) if lines and lines[0].isdigit() else None

        self.port = poll(port, timeout, "Chromium's DevToolsActivePort")

    def new_tab(self, timeout: float = 30) -> Tab:
        """Connect to the browser's first page target."""

        def page_target() -> str | None:
            try:
                targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=5).json()
            except httpx.HTTPError:
                return None
            for target in targets:
                if target.get("type") == "page":
                    return str(target["webSocketDebuggerUrl"])
            return None

        tab = Tab(poll(page_target, timeout, "a page target"))
        tab.set_viewport(*self.size)
        return tab

    def stop(self) -> None:
        """Kill the browser and every process it started."""
        if self.process is not None:
            kill_tree(self.process.pid)
            self.process.wait(timeout=30)
            self.process = None


@contextlib.contextmanager
def chromium(executable: str, profile: Path, width: int = 1280, height: int = 900) -> Iterator[Tab]:
    """Run Chromium for the block and yield a connected tab; always clean up."""
    browser = Chromium(executable, profile, width, height)
    tab: Tab | None = None
    try:
        browser.start()
        tab = browser.new_tab()
        yield tab
    finally:
        if tab is not None:
            tab.close()
        browser.stop()
