"""Fixtures: a real local HTTP server (``endpoint``), a clock the test moves, a context."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from backout.telemetry import SourceContext
from tests.unit.telemetry.servers import Clock, Endpoint, handler


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """A ThreadingHTTPServer on a free local port answering with ``Endpoint``."""
    state = Endpoint()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        state.delay = 0.0
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def context(tmp_path: Path, clock: Clock) -> Callable[..., SourceContext]:
    def make(**overrides: object) -> SourceContext:
        values: dict[str, Any] = {"timeout": 2.0, "workdir": tmp_path, "clock": clock}
        values.update(overrides)
        return SourceContext(**values)

    return make
