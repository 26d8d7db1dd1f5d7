"""A throwaway PostgreSQL server for the tests that use one.

The server runs from the machine's PostgreSQL binaries in a temporary data
directory, listens on 127.0.0.1 on a free port, and is stopped at the end of
the test session. When the binaries are missing the tests that need the
server fail with the command that installs them: they never skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INSTALL_HINT = "install PostgreSQL first: apt-get install -y postgresql"


def find_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class PostgresServer:
    """A PostgreSQL server in a temporary directory, on 127.0.0.1."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="dorm-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
        self.data = self.base / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://dorm@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *arguments: str) -> None:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *arguments]
        subprocess.run(_as_server_user(command), check=True, capture_output=True)

    def init(self) -> None:
        command = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "dorm",
            "--auth=trust",
            "-E",
            "UTF8",
        ]
        subprocess.run(_as_server_user(command), check=True, capture_output=True)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c fsync=off"
        self._pg_ctl("-l", str(self.base / "server.log"), "-o", options, "-w", "start")
        _wait_for_port(self.port)

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a server; stop and delete it afterwards."""
    server = PostgresServer()
    server.init()
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
        server.remove()


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{port} within {timeout:g} s")
