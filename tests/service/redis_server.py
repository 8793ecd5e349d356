"""A real redis-server for a test: started on a loopback port in a temporary directory.

Tests of shared state need the real thing (Lua scripts, ``TIME``, connections that break
when the server dies), so this starts ``redis-server`` as a child process with nothing
persisted. ``stop()`` kills it with SIGKILL, as a crash would; ``restart()`` starts it
again on the same port, empty; ``pause()`` freezes it (SIGSTOP), as a hung server.

Where the binary is missing, :func:`require_redis_server` skips the test, unless
``FLEETROUTE_REQUIRE_SERVERS=1`` (set by CI), where it fails: CI must not pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

from .live_server import free_port

__all__ = ["RedisServer", "redis_server_binary", "require_redis_server"]

# The Debian package's binary; a redis-server on PATH is the fallback.
_DEBIAN_BINARY = "/usr/bin/redis-server"


def redis_server_binary() -> str | None:
    """The path of a redis-server executable, or None when there is none."""
    if os.access(_DEBIAN_BINARY, os.X_OK):
        return _DEBIAN_BINARY
    return shutil.which("redis-server")


def require_redis_server() -> str:
    """The redis-server path; skips the calling test when there is none, or fails it
    when ``FLEETROUTE_REQUIRE_SERVERS=1``."""
    binary = redis_server_binary()
    if binary is not None:
        return binary
    reason = f"redis-server not found (looked at {_DEBIAN_BINARY} and on PATH)"
    if os.environ.get("FLEETROUTE_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason}, and FLEETROUTE_REQUIRE_SERVERS=1 requires it")
    pytest.skip(reason)


class RedisServer:
    """One redis-server process; use as a context manager (or ``start``/``close``).

    With ``port`` None a free port is picked (and another one if the first was taken
    before the server bound it); ``restart`` always reuses the port, so clients holding
    ``url`` reconnect to the new server.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        startup_timeout_s: float = 10.0,
    ) -> None:
        found = binary or redis_server_binary()
        if found is None:
            raise RuntimeError("redis-server not found; see require_redis_server()")
        self.binary = found
        self._port_given = port is not None
        self.port = port if port is not None else free_port()
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Starts the server and returns once it answers PING."""
        if self.running:
            raise RuntimeError(f"redis-server is already running on port {self.port}")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="fleetroute-redis-"))
        attempts = 1 if self._port_given else 3
        for attempt in range(attempts):
            if self._launch():
                return
            if attempt + 1 < attempts:
                # Someone took the port between picking and binding it: pick another.
                self.port = free_port()
        raise RuntimeError(f"redis-server did not start on port {self.port}: {self._log_tail()}")

    def stop(self) -> None:
        """Kills the server with SIGKILL (a crash: no shutdown, no goodbye to clients)."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()

    def pause(self) -> None:
        """Freezes the server (SIGSTOP): it accepts connections but never answers, as a
        hung server does. ``resume`` (or ``stop``) ends it."""
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Lets a paused server run again (SIGCONT)."""
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kills the server if it runs and starts a new, empty one on the same port."""
        self.stop()
        self._port_given = True
        self.start()

    def close(self) -> None:
        """Stops the server and removes its directory."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _launch(self) -> bool:
        """Starts one process; True once it answers, False if it exited (port taken)."""
        assert self._dir is not None
        log = self._dir / "redis.log"
        log.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
                "--logfile",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if self._answers_ping():
                return True
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(
            f"redis-server did not answer PING on port {self.port} within "
            f"{self.startup_timeout_s} s: {self._log_tail()}"
        )

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _log_tail(self) -> str:
        log = None if self._dir is None else self._dir / "redis.log"
        if log is None or not log.exists():
            return "no log"
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
