"""The flag server for tests: the real app behind the real uvicorn setup that ``backout flags
serve`` uses (head deadline protocol, limits, token), on a socket bound the same way, run in
a thread of the test process; and ``backout flags serve`` itself as a subprocess.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from backout.flags import listen
from backout.flags.guard import Limits, ServedTraffic
from backout.flags.server import create_app
from backout.store.db import open_store
from tests.services import wait_for_line, wait_until

START_TIMEOUT_S = 30.0  # generous: a loaded machine takes seconds just to import the CLI
SERVING = re.compile(r"serving flags from \S+ on (http://\S+) \(")


@dataclass
class FlagServer:
    url: str
    port: int
    traffic: ServedTraffic


@contextmanager
def flag_server(
    store_url: str, *, token: str | None = None, limits: Limits | None = None
) -> Iterator[FlagServer]:
    """Serve ``store_url`` on a free loopback port until the block ends."""
    limits = limits or Limits()
    store = open_store(store_url)
    listener = listen.listen("127.0.0.1", 0, token, allow_no_token=False)
    traffic = ServedTraffic()
    server = listen.make_server(
        create_app(store, token=token, limits=limits, traffic=traffic), limits
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener.sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, START_TIMEOUT_S, "the flag server to start")
        yield FlagServer(listener.url, int(listener.sock.getsockname()[1]), traffic)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        listener.sock.close()
        store.dispose()


@dataclass
class ServeProcess:
    """``backout flags serve`` running as a subprocess; ``url`` is read from its first line."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def output(self) -> str:
        return self.log.read_text()


def start_serve(
    store_url: str, log: Path, *args: str, env: dict[str, str] | None = None
) -> ServeProcess:
    """Start ``backout --db URL flags serve --port 0 ARGS`` and wait for its "serving" line."""
    argv = [sys.executable, "-m", "backout", "--db", store_url, "flags", "serve", "--port", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen([*argv, *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    serve = ServeProcess(process, log)
    found = wait_for_line(process, log, SERVING, "flags serve")
    serve.url = found.group(1)
    return serve
