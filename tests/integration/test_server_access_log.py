"""The server's access log: one line per request with its client, actor, method, target,
status and duration; never the token."""

from __future__ import annotations

import logging
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from backout.server.access import LOGGER
from tests.integration import test_server
from tests.services import wait_until

serve = test_server.serve  # the fixture: the API on a free loopback port, in a thread


def test_each_request_is_logged_once_answered_with_its_actor_and_never_its_token(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    api = serve()
    token = api.token("viewer", "alice")
    assert api.get("/api/v1/runs?limit=5", token).status_code == 200
    assert api.get("/api/v1/runs", "bo_wrong").status_code == 401
    assert api.post("/api/v1/services/shop/trigger", token, json={"reason": "x"}).status_code == 403
    wait_until(lambda: len(_lines(caplog)) >= 3, 30, "three access-log lines")
    lines = _lines(caplog)
    assert lines[0].startswith("127.0.0.1 alice GET /api/v1/runs?limit=5 200 ")
    assert lines[1].startswith("127.0.0.1 - GET /api/v1/runs 401 ")
    assert lines[2].startswith("127.0.0.1 alice POST /api/v1/services/shop/trigger 403 ")
    assert all(line.endswith("ms") for line in lines)
    assert not any(token in line or "bo_wrong" in line for line in caplog.messages)


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_backout_server_logs_requests_to_stderr_unless_told_not_to(tmp_path: Path) -> None:
    from tests.integration.test_server_cli import start, stop

    store = f"sqlite:///{tmp_path / 'backout.db'}"
    for flag, logged in (("--access-log", True), ("--no-access-log", False)):
        log = tmp_path / f"server{flag}.log"
        process, url, _ = start(store, log, "--listen", "127.0.0.1:0", "--open", flag)
        assert httpx.get(f"{url}/api/v1/runs?limit=3", timeout=30).status_code == 200
        assert stop(process, signal.SIGTERM) == 143
        line = re.search(
            r"INFO backout\.server\.access: 127\.0\.0\.1 anonymous GET "
            r"/api/v1/runs\?limit=3 200 [\d.]+ms",
            log.read_text(),
        )
        assert (line is not None) is logged, log.read_text()
