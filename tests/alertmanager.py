"""A real Alertmanager (Debian ``prometheus-alertmanager``) for tests, started as a user-level
process on a free port, clustering off, everything (config, storage, log) under ``tmp_path``.

Fixture (import it into a test module or a conftest)::

    alertmanager_factory -> start(webhook_url, token_file, user=None, group_wait="100ms")
                            -> Alertmanager: .url .port .config .log; .post(alerts) .alerts()

The webhook receiver sends the token of ``token_file`` as a bearer token, or, with
``user``, as that user's basic-auth password (Alertmanager's ``http_config``).

Each instance stands alone (``--cluster.listen-address=``), as the members of an HA pair
do once they lose their peer link: each one notifies on its own. Alerts are fed through
Alertmanager's own API (``POST /api/v2/alerts``) rather than through a Prometheus server.
A missing binary skips with the apt-get line to run (fails under
``BACKOUT_REQUIRE_SERVICES=1``), through ``missing_service``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import find_binary, free_port, start_process, stop_process

CONFIG = """\
route:
  receiver: backout
  group_by: [alertname, service]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
receivers:
  - name: backout
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
{auth}
"""
BEARER = """\
          authorization:
            type: Bearer
            credentials_file: {token_file}"""
BASIC = """\
          basic_auth:
            username: {user}
            password_file: {token_file}"""


@dataclass
class Alertmanager:
    port: int
    config: Path
    log: Path
    process: Any = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """Hand alerts to Alertmanager as Prometheus would (API v2)."""
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        assert response.status_code == 200, response.text

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        return list(response.json())


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_alertmanager(
    root: Path,
    webhook_url: str,
    token_file: Path,
    user: str | None = None,
    group_wait: str = "100ms",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> Alertmanager:
    binary = find_binary("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager")
    home = root / f"alertmanager-{len(list(root.glob('alertmanager-*')))}"
    home.mkdir(parents=True)
    config = home / "alertmanager.yml"
    auth = (BASIC if user else BEARER).format(token_file=token_file, user=user)
    config.write_text(
        CONFIG.format(
            webhook_url=webhook_url,
            auth=auth,
            group_wait=group_wait,
            group_interval=group_interval,
            repeat_interval=repeat_interval,
        )
    )
    port = free_port()
    log = home / "alertmanager.log"
    process = start_process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",  # its webhooks' externalURL
            "--cluster.listen-address=",  # no gossip: this member notifies on its own
            "--log.level=warn",
        ],
        log,
        lambda: _ready(port),
        f"Alertmanager on port {port}",
    )
    return Alertmanager(port, config, log, process)


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    started: list[Alertmanager] = []

    def start(
        webhook_url: str, token_file: Path, user: str | None = None, **timing: str
    ) -> Alertmanager:
        started.append(start_alertmanager(tmp_path, webhook_url, token_file, user, **timing))
        return started[-1]

    yield start
    for server in started:
        stop_process(server.process)
