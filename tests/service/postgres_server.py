"""A real, throwaway PostgreSQL server for the service tests.

``PostgresServer`` runs ``initdb`` into a fresh temporary directory, starts the server on a
free loopback port with trust authentication for 127.0.0.1 only, creates the database
``fleetroute_test`` and, on ``stop()``, kills the server and removes the directory.
Starting costs a few seconds, so tests share one server per session and call ``reset(url)``
between tests to drop the tables fleetroute created.

PostgreSQL refuses to run as root, so when the tests run as root the directory is handed to
the ``postgres`` user and every server command goes through ``runuser -u postgres --``.

When the binaries are missing the tests skip, unless ``FLEETROUTE_REQUIRE_SERVERS=1`` is set
(as CI does): then they fail, so a broken CI image cannot pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg
import pytest
import sqlalchemy as sa

from .live_server import free_port

__all__ = [
    "DATABASE",
    "REQUIRE_SERVERS_ENV",
    "PostgresServer",
    "postgres_binaries",
    "require_postgres_binaries",
    "reset",
    "servers_required",
]

#: The database every test server creates.
DATABASE = "fleetroute_test"

#: Set to "1" to turn a missing server binary from a skip into a failure.
REQUIRE_SERVERS_ENV = "FLEETROUTE_REQUIRE_SERVERS"

#: Where Debian's packages put each major version's server binaries.
_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_NEEDED = ("initdb", "pg_ctl", "postgres")
_SERVER_USER = "postgres"
_START_ATTEMPTS = 3
_COMMAND_TIMEOUT_S = 60.0


def servers_required() -> bool:
    """Whether a missing server must fail the tests instead of skipping them."""
    return os.environ.get(REQUIRE_SERVERS_ENV, "") == "1"


def postgres_binaries() -> str | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb, pg_ctl and postgres.

    ``None`` when no such directory exists.
    """
    if not _DEBIAN_ROOT.is_dir():
        return None
    candidates: list[tuple[int, Path]] = []
    for entry in _DEBIAN_ROOT.iterdir():
        # Only numbered version directories: "15", "16", ...
        if not re.fullmatch(r"\d+(\.\d+)?", entry.name):
            continue
        bin_dir = entry / "bin"
        if all(os.access(bin_dir / name, os.X_OK) for name in _NEEDED):
            candidates.append((int(entry.name.split(".")[0]), bin_dir))
    if not candidates:
        return None
    return str(max(candidates)[1])


def require_postgres_binaries() -> str:
    """``postgres_binaries()``, or skip the test (fail under FLEETROUTE_REQUIRE_SERVERS=1)."""
    bin_dir = postgres_binaries()
    if bin_dir is not None:
        return bin_dir
    reason = f"PostgreSQL server binaries not found under {_DEBIAN_ROOT}/<version>/bin"
    if servers_required():
        pytest.fail(f"{reason}, and {REQUIRE_SERVERS_ENV}=1 requires them")
    pytest.skip(reason)


def reset(url: str) -> None:
    """Drops every table in the database at ``url`` (all of them are fleetroute's)."""
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


class PostgresServer:
    """One PostgreSQL server in a temporary directory; a context manager.

    ``url`` is a SQLAlchemy URL (``postgresql+psycopg://...``) for the ``fleetroute_test``
    database, valid between ``start()`` and ``stop()``.
    """

    def __init__(self, bin_dir: str | None = None) -> None:
        self._bin_dir = Path(bin_dir if bin_dir is not None else require_postgres_binaries())
        self._root: Path | None = None
        self._port: int | None = None
        self._as_root = os.geteuid() == 0

    @property
    def port(self) -> int:
        """The TCP port the server listens on (127.0.0.1)."""
        if self._port is None:
            raise RuntimeError("the PostgreSQL server is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database."""
        return f"postgresql+psycopg://{_SERVER_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string for ``dbname`` (psycopg.connect takes it)."""
        return f"host=127.0.0.1 port={self.port} user={_SERVER_USER} dbname={dbname}"

    def start(self) -> None:
        """Initialises a cluster, starts the server and creates the test database."""
        if self._root is not None:
            raise RuntimeError("the PostgreSQL server is already started")
        root = Path(tempfile.mkdtemp(prefix="fleetroute-pg-"))
        try:
            if self._as_root:
                entry = pwd.getpwnam(_SERVER_USER)
                os.chown(root, entry.pw_uid, entry.pw_gid)
            data = root / "data"
            self._run(
                "initdb",
                "-D",
                str(data),
                "-U",
                _SERVER_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                cwd=root,
            )
            # TCP from 127.0.0.1 only; the unix socket lives in the private directory.
            (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
            self._port = self._start_server(root, data)
            with psycopg.connect(self.admin_conninfo(), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
        except BaseException:
            self._teardown(root)
            raise
        self._root = root

    def _start_server(self, root: Path, data: Path) -> int:
        # Another process may take the free port before the server binds it: retry on a new one.
        log = root / "server.log"
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            options = (
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            start = ("start", "-w", "-t", "30", "-D", str(data), "-l", str(log), "-o", options)
            try:
                self._run("pg_ctl", *start, cwd=root)
            except RuntimeError:
                continue
            return port
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start; server log:\n{tail}")

    def stop(self) -> None:
        """Kills the server (no clean shutdown needed) and removes its directory."""
        root, self._root = self._root, None
        self._port = None
        if root is not None:
            self._teardown(root)

    def _teardown(self, root: Path) -> None:
        data = root / "data"
        if (data / "postmaster.pid").exists():
            # The directory goes either way; a server that already died needs no stop.
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(data), cwd=root)
        shutil.rmtree(root, ignore_errors=True)

    def _run(self, tool: str, *args: str, cwd: Path) -> None:
        command = [str(self._bin_dir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", _SERVER_USER, "--", *command]
        result = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed with exit status {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
