"""Run SQLAlchemy's dialect compliance suite against a real ``dorm serve``.

    .venv/bin/python scripts/run_dialect_suite.py            # dorm+http, whole suite
    .venv/bin/python scripts/run_dialect_suite.py --sqlite   # built-in sqlite, same selection
    .venv/bin/python scripts/run_dialect_suite.py --quick    # a small subset, for CI
    .venv/bin/python scripts/run_dialect_suite.py -- -x -k InsertBehaviorTest

The script starts ``python -m dorm_sqlalchemy.server.cli`` on 127.0.0.1 with
a temporary tenant root and a random secret, runs pytest on
``tests/dialects/compliance/suite_dorm_http.py`` in a subprocess with
``--dburi dorm+http://:SECRET@127.0.0.1:PORT/compliance/api/db``, then stops
the server. With ``--sqlite`` no server starts and the suite runs against
SQLite's own dialect on a temporary file. Arguments after ``--`` go to pytest.
The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["QUICK_TESTS", "main", "pytest_command", "running_server"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SUITE_DIR = ROOT / "tests" / "dialects" / "compliance"
SUITE_FILE = SUITE_DIR / "suite_dorm_http.py"
REQUIREMENTS = "tests.dialects.compliance.requirements:Requirements"
TENANT = "compliance"
SERVER_START_TIMEOUT = 30.0

# The ``-k`` expression of --quick: writes, reads and basic reflection. It
# leaves out test_get_foreign_keys, which fails on SQLite's own dialect too.
QUICK_TESTS = (
    "SimpleUpdateDeleteTest or InsertBehaviorTest or RowFetchTest"
    " or (ComponentReflectionTest and (test_get_table_names or test_get_columns"
    " or test_get_pk_constraint or test_get_indexes))"
)

_LISTEN_LINE = re.compile(r"http://127\.0\.0\.1:(\d+)/")


class ServerStartError(RuntimeError):
    """``dorm serve`` exited or did not listen in time; the message has its log."""


def pytest_command(dburi: str, extra: Sequence[str]) -> list[str]:
    """Build the pytest command line that runs the suite against ``dburi``."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(SUITE_DIR / "pytest.ini"),
        "--rootdir",
        str(SUITE_DIR),
        "--dburi",
        dburi,
        "--requirements",
        REQUIREMENTS,
        str(SUITE_FILE),
        *extra,
    ]


@contextmanager
def running_server(root: Path, secret: str) -> Iterator[int]:
    """Run ``dorm serve`` on 127.0.0.1 with tenants under ``root``; yield its port, then stop it."""
    log_path = root / "server.log"
    environ = {**os.environ, "DORM_SECRET": secret}
    command = [
        sys.executable,
        "-m",
        "dorm_sqlalchemy.server.cli",
        "--root",
        str(root / "tenants"),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environ, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        port = _wait_for_port(process, log_path)
        logger.info("dorm serve (pid %d) listens on 127.0.0.1:%d", process.pid, port)
        yield port
    finally:
        _stop(process)


def _wait_for_port(process: subprocess.Popen[bytes], log_path: Path) -> int:
    # The server binds before it logs its address, so a logged port accepts
    # connections as soon as uvicorn starts its loop.
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(
                f"dorm serve exited with status {process.returncode} before listening:\n"
                f"{log_path.read_text(errors='replace')}"
            )
        match = _LISTEN_LINE.search(log_path.read_text(errors="replace"))
        if match and _accepts_connections(int(match.group(1))):
            return int(match.group(1))
        time.sleep(0.05)
    raise ServerStartError(
        f"dorm serve did not listen within {SERVER_START_TIMEOUT:g} s:\n"
        f"{log_path.read_text(errors='replace')}"
    )


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        logger.error("dorm serve (pid %d) ignored SIGTERM for 15 s; killing it", process.pid)
        process.kill()
        process.wait()


def _run_pytest(dburi: str, extra: Sequence[str], cwd: Path) -> int:
    command = pytest_command(dburi, extra)
    printed_command = [part.replace(dburi, _hide_secret(dburi)) for part in command]
    logger.info("running %s", " ".join(printed_command))
    # pytest runs in a temporary directory, and SQLAlchemy's plugin imports
    # the requirements class by its dotted name from the repository root.
    python_path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path)}
    return subprocess.run(command, cwd=cwd, env=environ, check=False).returncode


def _hide_secret(dburi: str) -> str:
    return re.sub(r"://:[^@]*@", "://:***@", dburi)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite with the options of ``argv``; return pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="run against the built-in sqlite dialect on a temporary file instead of dorm serve",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"run only the tests that match -k {QUICK_TESTS!r}",
    )
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    args = parser.parse_args(argv)

    extra = list(args.pytest_args)
    if args.quick:
        extra = ["-k", QUICK_TESTS, *extra]

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="dorm-compliance-") as directory:
        workdir = Path(directory)

        # SQLAlchemy's SQLite provisioning creates its attached test_schema
        # file in the working directory, so pytest runs in the temporary one.
        if args.sqlite:
            return _run_pytest(f"sqlite:///{workdir / 'compliance.db'}", extra, workdir)

        secret = secrets.token_urlsafe(24)
        with running_server(workdir, secret) as port:
            dburi = f"dorm+http://:{secret}@127.0.0.1:{port}/{TENANT}/api/db"
            return _run_pytest(dburi, extra, workdir)


if __name__ == "__main__":
    sys.exit(main())
