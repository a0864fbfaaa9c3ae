"""Real services for integration tests: nginx and Prometheus, started as user-level
processes on free ports with everything (config, pid, logs, data) under ``tmp_path``.

Fixtures (registered by ``tests/integration/conftest.py``; import this module elsewhere)::

    nginx               -> Nginx: .conf .include .upstream .port .url .access_log .error_log
                           .prefix .binary; .upstreams(since) .log_size() .workers()
                           .wait_reloaded(before)
    prometheus_factory  -> start(targets, scrape_interval="1s") -> Prometheus
    prometheus          -> Prometheus scraping ``prometheus_targets`` (override that fixture)
                           .url .port .config .data_dir .log; .query(expr) .wait_for(expr, ok)
    http_backend        -> start(handler) -> Backend: .address ("127.0.0.1:PORT") .url .hits

A missing binary skips the test with the apt-get line to run, or fails it under
``BACKOUT_REQUIRE_SERVICES=1`` (CI), through ``missing_service``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import missing_service

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
UPSTREAM = re.compile(r"upstream=(\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def find_binary(name: str, *fallbacks: str) -> str:
    """The program on PATH or in sbin (not on a normal user's PATH), else skip/fail."""
    found = shutil.which(name) or next((f for f in fallbacks if os.access(f, os.X_OK)), None)
    if found is None:
        missing_service(f"{name} not installed: apt-get install {name}")
    assert found is not None
    return found


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_process(
    argv: list[str], log: Path, ready: Callable[[], bool], what: str
) -> subprocess.Popen[bytes]:
    """Start a foreground server, wait until ``ready``; on failure show its own log."""
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: process.poll() is not None or ready(), START_TIMEOUT_S, what)
    except TimeoutError:
        stop_process(process)
        raise
    if process.poll() is not None:
        raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
    return process


# --- tiny HTTP backends ---------------------------------------------------------------------
Handler = Callable[[str], tuple[int, str, str]]  # path -> (status, content type, body)


@dataclass
class Backend:
    server: ThreadingHTTPServer
    hits: int = 0

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def start_backend(handler: Handler, port: int = 0) -> Backend:
    """Serve ``handler`` on 127.0.0.1:``port`` (0: a free one) in a thread."""
    backend: Backend

    class Reply(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            backend.hits += 1
            status, content_type, body = handler(self.path)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    backend = Backend(ThreadingHTTPServer(("127.0.0.1", port), Reply))
    threading.Thread(target=backend.server.serve_forever, args=(0.05,), daemon=True).start()
    return backend


@pytest.fixture
def http_backend() -> Iterator[Callable[[Handler], Backend]]:
    started: list[Backend] = []

    def start(handler: Handler) -> Backend:
        started.append(start_backend(handler))
        return started[-1]

    yield start
    for backend in started:
        backend.server.shutdown()
        backend.server.server_close()


# --- nginx ----------------------------------------------------------------------------------
NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log notice;
{user}
events {{ worker_connections 256; }}

http {{
    log_format backout '$msec $status "$request" upstream=$upstream_addr';
    access_log {prefix}/logs/access.log backout;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;

    include {include};

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_next_upstream off;  # a failed member must show up, not be retried away
        }}
    }}
}}
"""
# Until a test writes its own upstream, nginx proxies to a member that is down (502).
PLACEHOLDER_UPSTREAM = "upstream {upstream} {{\n    server 127.0.0.1:9 down;\n}}\n"


@dataclass
class Nginx:
    binary: str
    prefix: Path
    conf: Path
    include: Path
    upstream: str
    port: int
    access_log: Path
    error_log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_size(self) -> int:
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def upstreams(self, since: int = 0) -> list[str]:
        """``$upstream_addr`` of every request logged after byte offset ``since``."""
        with self.access_log.open("rb") as log:
            log.seek(since)
            text = log.read().decode()
        return [m.group(1) for m in map(UPSTREAM.search, text.splitlines()) if m]

    def workers(self) -> set[int]:
        """Workers of the current generation (not those finishing after a reload)."""
        found = set()
        for pid in _children(self.process.pid):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "worker process" in title and "shutting down" not in title:
                found.add(pid)
        return found

    def wait_reloaded(self, before: set[int], timeout: float = 5.0) -> None:
        """After ``nginx -s reload``: wait until only new workers accept connections (old
        ones retitle themselves "shutting down" as they close their listening sockets)."""
        wait_until(
            lambda: bool(self.workers()) and not (self.workers() & before),
            timeout,
            "nginx to finish its reload",
        )


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the field after the ")"-terminated command name: state, then ppid
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def start_nginx(
    root: Path, upstream: str = "backend", include_name: str = "upstream.conf"
) -> Nginx:
    binary = find_binary("nginx", "/usr/sbin/nginx")
    prefix = root / "nginx"
    for folder in ("logs", "temp"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    port = free_port()
    include = prefix / include_name
    include.write_text(PLACEHOLDER_UPSTREAM.format(upstream=upstream))
    conf = prefix / "nginx.conf"
    # as root, nginx would hand its workers to "nobody", who cannot enter pytest's 0700 folders
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_CONF.format(prefix=prefix, include=include, port=port, upstream=upstream, user=user)
    )
    process = start_process(
        [binary, "-c", str(conf), "-p", str(prefix)],
        prefix / "logs" / "stderr.log",
        lambda: port_open(port),
        f"nginx on port {port}",
    )
    return Nginx(
        binary,
        prefix,
        conf,
        include,
        upstream,
        port,
        prefix / "logs" / "access.log",
        prefix / "logs" / "error.log",
        process,
    )


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    server = start_nginx(tmp_path)
    yield server
    stop_process(server.process, signal.SIGQUIT)  # graceful: workers finish, then exit


# --- Prometheus -----------------------------------------------------------------------------
PROMETHEUS_CONFIG = """\
global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
scrape_configs:
  - job_name: backout-test
    scrape_interval: {interval}
    scrape_timeout: {interval}
    static_configs:
      - targets: [{targets}]
"""


@dataclass
class Prometheus:
    port: int
    config: Path
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's ``data.result`` (``[{metric: {...}, value: [t, "v"]}]``)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def wait_for(
        self, expr: str, ok: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Query until ``ok(result)``; returns that result."""
        result: list[dict[str, Any]] = []

        def check() -> bool:
            nonlocal result
            result = self.query(expr)
            return ok(result)

        wait_until(check, timeout, f"Prometheus query {expr!r} to match")
        return result


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_prometheus(
    root: Path, targets: list[str], scrape_interval: str = "1s", config_text: str | None = None
) -> Prometheus:
    """Prometheus scraping ``targets``, or with ``config_text`` as its whole configuration."""
    binary = find_binary("prometheus")
    home = root / f"prometheus-{len(list(root.glob('prometheus-*')))}"
    home.mkdir(parents=True)
    config = home / "prometheus.yml"
    config.write_text(
        config_text
        or PROMETHEUS_CONFIG.format(
            interval=scrape_interval, targets=", ".join(f'"{target}"' for target in targets)
        )
    )
    port = free_port()
    data_dir = home / "data"
    log = home / "prometheus.log"
    process = start_process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log,
        lambda: _ready(port),
        f"Prometheus on port {port}",
    )
    return Prometheus(port, config, data_dir, log, process)


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    started: list[Prometheus] = []

    def start(targets: list[str], scrape_interval: str = "1s") -> Prometheus:
        started.append(start_prometheus(tmp_path, targets, scrape_interval))
        return started[-1]

    yield start
    for server in started:
        stop_process(server.process)


@pytest.fixture
def prometheus_targets() -> list[str]:
    """``host:port`` targets the ``prometheus`` fixture scrapes; override it in a test module."""
    return []


@pytest.fixture
def prometheus(
    prometheus_factory: Callable[..., Prometheus], prometheus_targets: list[str]
) -> Prometheus:
    return prometheus_factory(prometheus_targets)


def wait_for_line(
    process: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str], what: str
) -> re.Match[str]:
    """Wait until ``process`` writes a line matching ``pattern`` to ``log`` (a server's
    "serving on …"); stop it and raise if it exits or says nothing in time."""
    try:
        wait_until(
            lambda: process.poll() is not None or pattern.search(log.read_text()) is not None,
            30.0,  # generous: a loaded machine takes seconds just to import the CLI
            f"{what} to say it is serving",
        )
    except TimeoutError:
        stop_process(process)
        raise
    found = pattern.search(log.read_text())
    if found is None:
        stop_process(process)
        raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
    return found
