"""Headless Chromium driven over the DevTools protocol, for browser tests of the service.

A test starts a real browser, points it at a live server and asks the page questions
in JavaScript::

    with launch_chromium() as browser:
        browser.navigate(f"{server.url}/dashboard")
        browser.wait_for("Number(document.body.dataset.snapshots) >= 2")
        browser.screenshot(artifacts_dir(tmp_path) / "dashboard.png")
        assert browser.console_errors == []

It speaks the protocol itself (one WebSocket, one attached page session, requests
answered in order, events folded in as they pass) rather than depending on a browser
automation package: the suite needs a dozen commands, and the fewer moving parts a
browser test has, the fewer ways it finds to be flaky.

Chromium missing: :func:`require_chromium` skips the test, or fails it when
``FLEETROUTE_REQUIRE_SERVERS=1`` (as CI sets).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest
from websockets.sync.client import ClientConnection, connect

from .live_server import free_port

__all__ = [
    "Chromium",
    "ChromiumError",
    "artifacts_dir",
    "find_chromium",
    "launch_chromium",
    "require_chromium",
]

_BINARIES = ("chromium", "chromium-browser")


class ChromiumError(RuntimeError):
    """The browser failed to start, a command failed, or a page script threw."""


def find_chromium() -> str | None:
    """The path of a Chromium binary on ``PATH``, or None."""
    for name in _BINARIES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def require_chromium() -> str:
    """The Chromium binary; skips the test without one (fails it under CI's rule)."""
    path = find_chromium()
    if path is None:
        reason = f"no Chromium binary on PATH (looked for {', '.join(_BINARIES)})"
        if os.environ.get("FLEETROUTE_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{reason}, and FLEETROUTE_REQUIRE_SERVERS=1")
        pytest.skip(reason)
    return path


def launch_chromium(**options: Any) -> Chromium:
    """Starts headless Chromium (see :class:`Chromium`), or skips/fails as
    :func:`require_chromium` says."""
    return Chromium(require_chromium(), **options)


def artifacts_dir(default: Path) -> Path:
    """Where a test leaves files for people to look at: ``$FLEETROUTE_ARTIFACTS`` when
    set (CI uploads it), else ``default`` (usually pytest's ``tmp_path``)."""
    configured = os.environ.get("FLEETROUTE_ARTIFACTS")
    path = Path(configured) if configured else default
    path.mkdir(parents=True, exist_ok=True)
    return path


class Chromium:
    """One headless Chromium process with one page, controlled over CDP.

    The process, its profile directory and the DevTools connection all end at
    :meth:`close` (or the end of the ``with`` block).
    """

    def __init__(
        self,
        binary: str,
        *,
        width: int = 1280,
        height: int = 900,
        startup_timeout_s: float = 20.0,
        command_timeout_s: float = 15.0,
    ) -> None:
        self._errors: list[str] = []
        self._command_timeout_s = command_timeout_s
        self._ids = itertools.count(1)
        self._session_id: str | None = None
        self._ws: ClientConnection | None = None
        self._resources = contextlib.ExitStack()
        self._closed = False
        self._root = Path(tempfile.mkdtemp(prefix="fleetroute-chromium-"))
        self._log: IO[bytes] = (self._root / "chromium.log").open("wb")
        port = free_port()
        args = [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--remote-debugging-port={port}",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={self._root / 'profile'}",
            f"--window-size={width},{height}",
            # Containers have a small /dev/shm, and a test browser should neither phone
            # home nor slow down timers or frames in a window it thinks is in the back.
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-breakpad",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--disable-renderer-backgrounding",
            "--mute-audio",
            "--hide-scrollbars",
            "about:blank",
        ]
        try:
            # Its own process group, so close() can end the helper processes Chromium forks.
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self._log.close()
            shutil.rmtree(self._root, ignore_errors=True)
            raise
        try:
            endpoint = self._devtools_endpoint(port, startup_timeout_s)
            self._ws = self._open_socket(endpoint, startup_timeout_s)
            self._attach_page(width, height)
        except BaseException:
            self.close()
            raise

    # ---- lifecycle ----------------------------------------------------------------

    def __enter__(self) -> Chromium:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Ends the browser and removes its profile; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.send(json.dumps({"id": next(self._ids), "method": "Browser.close"}))
        else:
            # It never answered on DevTools (a failed start): no polite way to ask.
            self._signal_group(signal.SIGTERM)
        self._resources.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._process.wait(timeout=10)
        # Helpers (renderer, zygote) that outlived the browser go with its group.
        self._signal_group(signal.SIGKILL)
        self._log.close()
        shutil.rmtree(self._root, ignore_errors=True)

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    # ---- page API -----------------------------------------------------------------

    @property
    def console_errors(self) -> list[str]:
        """Uncaught exceptions, ``console.error`` calls and browser error log entries
        (failed loads, refused connections, security policy violations) so far."""
        if not self._closed:
            self.drain_events()
        return list(self._errors)

    def navigate(self, url: str, *, timeout_s: float = 15.0) -> None:
        """Loads ``url`` and returns when the document has finished loading."""
        result = self._command("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise ChromiumError(f"navigating to {url} failed: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout_s)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited).

        Raises :class:`ChromiumError` with the page's message when it throws.
        """
        result = self._command(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        details = result.get("exceptionDetails")
        if details is not None:
            raise ChromiumError(f"{expression!r} threw: {_exception_text(details)}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float = 10.0, *, poll_s: float = 0.05) -> Any:
        """Evaluates ``expression`` until it is truthy and returns that value.

        Raises TimeoutError naming the expression, its last value and the page's
        console errors when ``timeout_s`` passes first.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{expression!r} still {value!r} after {timeout_s} s; "
                    f"console errors: {self.console_errors!r}"
                )
            time.sleep(poll_s)

    def screenshot(self, path: Path | str, *, full_page: bool = True) -> Path:
        """Writes a PNG of the page (all of it, or just the viewport) to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self._command("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
        result = self._command("Page.captureScreenshot", params)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(result["data"]))
        return target

    def resource_urls(self) -> list[str]:
        """Every URL the page has loaded so far (the document and its resources)."""
        urls = self.evaluate(
            "[...performance.getEntriesByType('navigation'),"
            " ...performance.getEntriesByType('resource')].map((e) => e.name)"
        )
        return [str(url) for url in urls or []]

    def drain_events(self) -> None:
        """Takes in the events the browser has sent so far (console errors among them)."""
        assert self._ws is not None
        while True:
            try:
                raw = self._ws.recv(timeout=0)
            except TimeoutError:
                return
            self._on_event(json.loads(raw))

    # ---- protocol -----------------------------------------------------------------

    def _devtools_endpoint(self, port: int, timeout_s: float) -> str:
        # Loopback must not go through whatever HTTP proxy the environment names.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"http://127.0.0.1:{port}/json/version"
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise ChromiumError(
                    f"Chromium exited with status {self._process.returncode}: {self._log_tail()}"
                )
            try:
                with opener.open(url, timeout=1.0) as response:
                    endpoint: str = json.load(response)["webSocketDebuggerUrl"]
                    return endpoint
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                if time.monotonic() >= deadline:
                    raise ChromiumError(
                        f"no DevTools endpoint at {url} after {timeout_s} s: {self._log_tail()}"
                    ) from None
            time.sleep(0.05)

    def _open_socket(self, endpoint: str, timeout_s: float) -> ClientConnection:
        parsed = urllib.parse.urlsplit(endpoint)
        host = parsed.hostname or "127.0.0.1"
        port = parsed.port or 80
        # A socket of our own: loopback, no proxy, whatever the environment says.
        sock = socket.create_connection((host, port), timeout=timeout_s)
        try:
            connection = connect(
                endpoint,
                sock=sock,
                open_timeout=timeout_s,
                ping_interval=None,
                compression=None,
                max_size=None,
            )
        except BaseException:
            sock.close()
            raise
        # Entered as a context manager, as websockets asks; close() leaves it.
        return self._resources.enter_context(connection)

    def _attach_page(self, width: int, height: int) -> None:
        targets = self._command("Target.getTargets", session=False)["targetInfos"]
        pages = [t["targetId"] for t in targets if t.get("type") == "page"]
        if pages:
            target_id = pages[0]
        else:
            created = self._command("Target.createTarget", {"url": "about:blank"}, session=False)
            target_id = created["targetId"]
        attached = self._command(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}, session=False
        )
        self._session_id = attached["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self._command(method)
        self._command(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def _command(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = True
    ) -> dict[str, Any]:
        """Sends one command and returns its result, folding in events that arrive first."""
        if self._ws is None or self._closed:
            raise ChromiumError(f"{method}: the browser is closed")
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session_id
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + self._command_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                raw = self._ws.recv(timeout=remaining)
            except TimeoutError:
                raise ChromiumError(
                    f"{method}: no answer within {self._command_timeout_s} s"
                ) from None
            reply: dict[str, Any] = json.loads(raw)
            if reply.get("id") != message_id:
                self._on_event(reply)
                continue
            if "error" in reply:
                error = reply["error"]
                raise ChromiumError(
                    f"{method} failed: {error.get('message')} {error.get('data', '')}"
                )
            result: dict[str, Any] = reply.get("result", {})
            return result

    def _on_event(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params: dict[str, Any] = message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self._errors.append(_exception_text(params.get("exceptionDetails", {})))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            self._errors.append(f"console.{params['type']}: {text}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                where = f" ({entry['url']})" if entry.get("url") else ""
                self._errors.append(f"{entry.get('source', 'log')}: {entry.get('text')}{where}")

    def _log_tail(self, limit: int = 2_000) -> str:
        self._log.flush()
        text = (self._root / "chromium.log").read_text(encoding="utf-8", errors="replace")
        return text[-limit:].strip() or "(no output)"


def _exception_text(details: dict[str, Any]) -> str:
    exception = details.get("exception", {})
    description = exception.get("description") or exception.get("value")
    return str(description or details.get("text", "unknown exception"))
