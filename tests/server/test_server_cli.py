"""``dorm serve`` (here through ``python -m dorm_sqlalchemy.server.cli``) and the app's lifespan."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dorm_sqlalchemy.server import create_app
from dorm_sqlalchemy.server.cli import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    InsecureServerError,
    add_arguments,
    check_listen_address,
    http_stack,
    is_loopback,
    main,
)

SECRET = "cli-secret-value-42"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_non_loopback_without_secret_refused() -> None:
    with pytest.raises(InsecureServerError, match="refusing to listen on 0.0.0.0 without a secret"):
        check_listen_address("0.0.0.0", authenticated=False)


def test_non_loopback_with_secret_allowed() -> None:
    check_listen_address("0.0.0.0", authenticated=True)


def test_main_refuses_public_address_without_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DORM_SECRET", raising=False)

    status = main(["--root", str(tmp_path), "--host", "0.0.0.0", "--port", "0"])

    assert status == 2
    assert "DORM_SECRET" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_arguments_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    args = parser.parse_args([])

    assert (args.host, args.port, args.secret, args.create_tenants) == (
        DEFAULT_HOST,
        DEFAULT_PORT,
        None,
        True,
    )
    assert args.cors_origins is None
    assert args.access_log is False


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "70000"],
        ["--port", "x"],
        ["--statement-timeout", "0"],
        ["--max-body-bytes", "-5"],
    ],
)
def test_invalid_arguments_rejected(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    with pytest.raises(SystemExit):
        parser.parse_args(argv)


async def _run_lifespan(app: Any) -> list[str]:
    """Drive the ASGI lifespan protocol: start-up, then shutdown; return the message types sent."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


@pytest.mark.parametrize("close_dorm", [False, True])
async def test_lifespan_closes_registry_only_when_asked(make_dorm: Any, close_dorm: bool) -> None:
    dorm = make_dorm()
    dorm.exec("acme", "SELECT 1").all()
    app = create_app(dorm, "s", close_dorm=close_dorm)

    sent = await _run_lifespan(app)

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    if close_dorm:
        with pytest.raises(RuntimeError, match="closed"):
            dorm.exec("acme", "SELECT 1")
    else:
        assert dorm.exec("acme", "SELECT 1").scalar() == 1


class ServerProcess:
    """``python -m dorm_sqlalchemy.server.cli`` running in a subprocess."""

    def __init__(self, root: Path, *options: str, secret: str | None = SECRET) -> None:
        environment = dict(os.environ)
        environment.pop("DORM_SECRET", None)
        if secret is not None:
            environment["DORM_SECRET"] = secret
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dorm_sqlalchemy.server.cli",
                "--root",
                str(root),
                "--port",
                "0",
                *options,
            ],
            # uvicorn writes its access log to stdout.
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        self.log: list[str] = []
        self.output = ""
        """What the process wrote to stdout (uvicorn's access log), read by :meth:`stop`."""
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        assert self.process.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if "Application startup complete" in line:
                match = re.search(r"at (http://127\.0\.0\.1:\d+)/", "".join(self.log))
                assert match, self.log
                return match.group(1)
        self.process.kill()
        self.process.wait()
        raise RuntimeError(f"the server did not start: {''.join(self.log)}")

    def stop(self, signal_number: int) -> str:
        """Send ``signal_number``, wait for the exit, and return the rest of the log."""
        assert self.process.stderr is not None
        self.process.send_signal(signal_number)
        rest = self.process.stderr.read()
        self.process.wait(timeout=30)
        self.process.stderr.close()
        assert self.process.stdout is not None
        with self.process.stdout:
            self.output = self.process.stdout.read()
        self.log.append(rest)
        return "".join(self.log)


@pytest.fixture
def start_process(tmp_path: Path) -> Any:
    started: list[ServerProcess] = []

    def start(*options: str, secret: str | None = SECRET) -> ServerProcess:
        server = ServerProcess(tmp_path / "tenants", *options, secret=secret)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_serve_logs_start_and_stops_cleanly(
    start_process: Any, tmp_path: Path, signal_number: int
) -> None:
    server = start_process()
    headers = {"Authorization": f"Bearer {SECRET}"}

    created = httpx.post(
        f"{server.url}/acme/api/db/query/raw", json={"sql": "CREATE TABLE t (x)"}, headers=headers
    )
    log = server.stop(signal_number)

    assert created.status_code == 200
    assert f"at {server.url}/<tenant>/api/db" in log
    assert str(tmp_path / "tenants") in log
    assert "authentication: bearer secret" in log
    assert SECRET not in log
    assert "HTTP API stopped" in log
    assert "Traceback" not in log
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert (tmp_path / "tenants" / "acme.db").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_http_stack_is_httptools_and_uvloop() -> None:
    assert http_stack() == {"http": "httptools", "loop": "uvloop"}


def test_serve_names_http_stack_in_log(start_process: Any) -> None:
    server = start_process()

    log = server.stop(signal.SIGINT)

    stack = http_stack()
    assert f"uvicorn with {stack['http']} and the {stack['loop']} event loop" in log


@pytest.mark.parametrize(("options", "logged"), [((), False), (("--access-log",), True)])
def test_serve_access_log_only_when_asked(
    start_process: Any, options: tuple[str, ...], logged: bool
) -> None:
    server = start_process(*options)
    response = httpx.post(
        f"{server.url}/acme/api/db/query/raw",
        json={"sql": "SELECT 1"},
        headers={"Authorization": f"Bearer {SECRET}"},
    )

    server.stop(signal.SIGINT)

    assert response.status_code == 200
    assert ('"POST /acme/api/db/query/raw HTTP/1.1" 200' in server.output) is logged


def test_serve_secret_from_option(start_process: Any) -> None:
    server = start_process("--secret", "option-secret", secret=None)

    without = httpx.post(f"{server.url}/acme/api/db/query/raw", json={"sql": "SELECT 1"})
    with_token = httpx.post(
        f"{server.url}/acme/api/db/query/raw",
        json={"sql": "SELECT 1"},
        headers={"Authorization": "Bearer option-secret"},
    )

    assert without.status_code == 401
    assert with_token.status_code == 200


def test_serve_without_secret_on_loopback(start_process: Any) -> None:
    server = start_process(secret=None)

    response = httpx.post(f"{server.url}/acme/api/db/query/raw", json={"sql": "SELECT 1"})
    log = server.stop(signal.SIGINT)

    assert response.status_code == 200
    assert "authentication: none" in log


def test_serve_no_create(start_process: Any, tmp_path: Path) -> None:
    server = start_process("--no-create")

    response = httpx.post(
        f"{server.url}/ghost/api/db/query/raw",
        json={"sql": "SELECT 1"},
        headers={"Authorization": f"Bearer {SECRET}"},
    )

    assert response.status_code == 404
    assert not (tmp_path / "tenants" / "ghost.db").exists()


def test_serve_limits_from_options(start_process: Any) -> None:
    server = start_process("--max-result-rows", "3", "--max-body-bytes", "100")
    headers = {"Authorization": f"Bearer {SECRET}"}

    rows = httpx.post(
        f"{server.url}/acme/api/db/query/raw",
        json={"sql": "SELECT value FROM json_each('[1,2,3,4]')"},
        headers=headers,
    )
    body = httpx.post(
        f"{server.url}/acme/api/db/query/raw",
        json={"sql": "SELECT '" + "x" * 200 + "'"},
        headers=headers,
    )

    assert rows.status_code == 400
    assert body.status_code == 413


def test_serve_answers_without_delayed_ack_stalls(start_process: Any) -> None:
    server = start_process()

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {SECRET}"}) as client:
        client.post("/acme/api/db/query/raw", json={"sql": "SELECT 1"})
        started = time.perf_counter()
        for _ in range(50):
            client.post("/acme/api/db/query/raw", json={"sql": "SELECT 1"})
        elapsed = time.perf_counter() - started

    # A missing TCP_NODELAY costs about 40 ms per request (the client's delayed ACK).
    assert elapsed / 50 < 0.02


def test_serve_root_from_environment(tmp_path: Path) -> None:
    environment = dict(os.environ, DORM_SECRET=SECRET, DORM_ROOT=str(tmp_path / "from-env"))
    environment.pop("DORM_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "dorm_sqlalchemy.server.cli", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert process.stderr is not None
    first_line = process.stderr.readline()
    process.send_signal(signal.SIGINT)
    process.stderr.read()
    process.wait(timeout=30)
    process.stderr.close()

    assert str(tmp_path / "from-env") in first_line


def test_invalid_cors_origin_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    with pytest.raises(SystemExit) as raised:
        parser.parse_args(["--cors-origin", "studio.outerbase.com"])

    assert raised.value.code == 2
    assert "invalid CORS origin 'studio.outerbase.com'" in capsys.readouterr().err


def test_cors_origin_written_as_browsers_send_it() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    args = parser.parse_args(["--cors-origin", "HTTP://App.Example:80/", "--cors-origin", "*"])

    assert args.cors_origins == ["http://app.example", "*"]
