"""``backout server``'s ``/metrics`` counts the trigger evaluations of the watches its own
workers run (server/live_metrics.py, triggers/lag.py): a real server process with one
worker runs a watch started through ``POST /api/v1/runs``, whose trigger reads a local
Prometheus-format target every 100 ms; two scrapes of the server's ``/metrics`` over HTTP
see the trigger's evaluation counter rise, and each reading's lag observed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fleet_targets import TargetServer, fleet_plan
from tests.integration.test_server_workers import (
    WAIT_S,
    Server,
    servers,
    start_run,
    start_server,
    token,
)
from tests.services import wait_until

__all__ = ["servers"]  # fixtures

SERVICE = "fleet-0"
TRIGGER = "errors above 10%"  # the trigger of tests/fleet_targets.py's plan
EVALUATIONS = "backout_trigger_evaluations_total"
LAG = "backout_watch_evaluation_lag_seconds"


def scrape(server: Server, secret: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    headers = {"Authorization": f"Bearer {secret}"}
    answer = httpx.get(f"{server.url}/metrics", headers=headers, timeout=WAIT_S)
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(figures: dict[Any, float], name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_server_counts_the_evaluations_of_the_watches_its_workers_run(
    store_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    (tmp_path / "plans").mkdir()
    viewer, operator = token(store_url, "viewer"), token(store_url, "operator")
    with TargetServer() as targets:
        plan = fleet_plan(0, targets.url(0), interval="100ms")
        (tmp_path / "plans" / f"{SERVICE}.yaml").write_text(plan)
        server = start_server(servers, store_url, tmp_path, "--workers", "1")
        started = start_run(server, operator, SERVICE, mode="watch", **{"for": "5m"})
        assert started.status_code == 202, started.text

        seen: dict[str, float] = {}

        def counted(more_than: float) -> bool:
            assert server.process.poll() is None, server.log.read_text()
            figures = scrape(server, viewer)
            seen["evaluations"] = value(figures, EVALUATIONS, service=SERVICE, trigger=TRIGGER)
            seen["lag_count"] = value(figures, f"{LAG}_count", service=SERVICE)
            seen["lag_le_inf"] = value(figures, f"{LAG}_bucket", service=SERVICE, le="+Inf")
            return seen["evaluations"] > more_than

        wait_until(lambda: counted(0.0), WAIT_S, f"{SERVICE}'s trigger evaluated")
        first = seen["evaluations"]
        wait_until(lambda: counted(first), WAIT_S, f"{SERVICE}'s evaluations to rise past {first}")
    assert seen["lag_count"] > 0  # each reading's lag was observed, in the watch's histogram
    assert seen["lag_le_inf"] == seen["lag_count"]
