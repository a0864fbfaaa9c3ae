"""``backout server`` as a process: it says where it serves, answers there with tokens made
by ``backout token create``, stops gracefully on SIGTERM and Ctrl-C with 143 and 130, and
refuses a bad ``--listen`` and ``--open`` on an address that is not loopback (exit 2, one
clear message, no traceback)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.services import stop_process, wait_for_line

START_TIMEOUT_S = 30.0  # generous: a loaded machine takes seconds just to import the CLI
SERVING = re.compile(r"serving the API from \S+ on (http://\S+) \((.*?)\)")


def backout(store: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "backout", "--db", store, *args]


def start(
    store: str, log: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str, str]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            backout(store, "server", *args),
            stdout=subprocess.DEVNULL,
            stderr=out,
            env={**os.environ, **(env or {})},
        )
    found = wait_for_line(process, log, SERVING, "backout server")
    return process, found.group(1), found.group(2)


def stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    process.send_signal(sig)
    try:
        return process.wait(START_TIMEOUT_S)
    finally:
        stop_process(process)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'backout.db'}"


def test_the_server_serves_tokens_and_stops_on_sigterm(store: str, tmp_path: Path) -> None:
    made = subprocess.run(
        backout(store, "token", "create", "--role", "viewer", "--actor", "ci"),
        capture_output=True,
        text=True,
        check=True,
    )
    token = re.search(r"bo_[A-Za-z0-9_-]{40}", made.stdout)
    assert token is not None
    log = tmp_path / "server.log"
    process, url, auth = start(store, log, "--listen", "127.0.0.1:0")
    assert auth == "bearer token required"
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{url}/healthz").status_code == 200
        assert client.get(f"{url}/api/v1/runs").status_code == 401
        headers = {"Authorization": f"Bearer {token.group(0)}"}
        listed = client.get(f"{url}/api/v1/runs", headers=headers)
        assert listed.status_code == 200
        assert listed.json() == {"runs": [], "next_cursor": None}
    assert stop(process, signal.SIGTERM) == 143
    said = log.read_text()
    assert "server stopped on SIGTERM" in said
    assert "refused GET /api/v1/runs: token missing" in said  # the case, for the log only
    assert token.group(0) not in said
    assert "Traceback" not in said


def test_open_reads_without_a_token_on_loopback_and_stops_on_ctrl_c(
    store: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    env = {"BACKOUT_SERVER_LISTEN": "127.0.0.1:0"}
    process, url, auth = start(store, log, "--open", env=env)
    assert auth == "open: reads need no token"
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{url}/api/v1/runs").status_code == 200
        denied = client.post(f"{url}/api/v1/services/shop/trigger", json={"reason": "r"})
        assert denied.status_code == 403
    assert stop(process, signal.SIGINT) == 130


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--open", "--listen", "0.0.0.0:0"], "refusing --open on 0.0.0.0"),
        (["--listen", "nowhere"], "--listen 'nowhere' is not an address to listen on"),
        (["--listen", "127.0.0.1:70000"], "is not an address to listen on"),
    ],
)
def test_bad_listen_addresses_are_refused_with_exit_2(
    store: str, args: list[str], said: str
) -> None:
    result = subprocess.run(
        backout(store, "server", *args), capture_output=True, text=True, timeout=START_TIMEOUT_S
    )
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
