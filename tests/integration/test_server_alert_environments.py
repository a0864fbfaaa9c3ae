"""Alerts for a service deployed per environment, over real HTTP on SQLite and PostgreSQL: a
plan with `environments:` keys its runs ``service@environment``, and an alert labelled
``service=shop, environment=staging`` (or sent with ``?environment=staging``) reaches the
watch started with ``--env staging``, and only that one. The watch is a real
``backout watch`` in a thread of the test, its polls switched off: only the ring wakes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backout.triggers import watcher
from tests.integration.test_server import assert_problem, serve, with_password
from tests.integration.test_server_alerts import AM_PATH, GENERIC_PATH, Watch, alert, webhook

__all__ = ["serve"]  # the fixture, re-exported for pytest

HOUR = 3600.0
PLAN = """\
plan: shop
service: shop
environments:
  staging: {}
  production: {}
triggers:
  - name: paged
    alertmanager: {match: {service: shop}, match_re: {severity: "page|critical"}}
steps:
  - name: back out
    run: [sh, -c, 'echo "backed out $BACKOUT_ENVIRONMENT_NAME" >> marks']
"""


@pytest.fixture(autouse=True)
def no_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch reads its inbox only when rung (and once as it starts)."""
    monkeypatch.setattr(watcher, "TICK_S", HOUR)
    monkeypatch.setattr(watcher, "POLL_PUSHED_S", HOUR)


@pytest.fixture
def watches(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Watch]]:
    monkeypatch.chdir(tmp_path)  # where the plan's step leaves its marks
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    started: list[Watch] = []

    def start(environment: str) -> Watch:
        started.append(Watch(with_password(store_url), plan, environment))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def test_an_alert_labelled_with_its_environment_backs_out_that_environments_watch(
    serve: Any, watches: Callable[[str], Watch], tmp_path: Path
) -> None:
    api = serve()
    token = api.token("operator", "alertmanager")
    production, staging = watches("production"), watches("staging")
    labels = {"alertname": "HighErrorRate", "service": "shop", "environment": "staging"}
    response = api.post(AM_PATH, token, json=webhook(alert(labels={**labels, "severity": "page"})))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["rung"] == [{"service": "shop@staging", "run_id": staging.id}]
    assert answer["alerts"][0]["service"] == "shop@staging"
    report = staging.finished()
    assert (report.status, report.result) == ("succeeded", "backed_out"), report.message
    assert report.trigger is not None
    assert report.trigger["trigger"] == "paged"
    assert (tmp_path / "marks").read_text() == "backed out staging\n"
    assert production.thread.is_alive()  # production's watch never heard of it
    assert api.audited("trigger.alert")[-1].details["service"] == "shop@staging"


def test_the_environment_parameter_names_the_environment_of_unlabelled_alerts(
    serve: Any, watches: Callable[[str], Watch], tmp_path: Path
) -> None:
    api = serve()
    token = api.token("operator", "grafana")
    staging = watches("staging")
    paging = {"service": "shop", "alertname": "CheckoutDown", "labels": {"severity": "critical"}}
    response = api.post(GENERIC_PATH + "?environment=staging", token, json=paging)
    assert response.status_code == 200, response.text
    assert response.json()["rung"] == [{"service": "shop@staging", "run_id": staging.id}]
    assert staging.finished().result == "backed_out"
    assert (tmp_path / "marks").read_text() == "backed out staging\n"

    unlabelled = webhook(alert(labels={"alertname": "HighErrorRate", "severity": "page"}))
    query = AM_PATH + "?service=shop&environment=production"
    answer = api.post(query, token, json=unlabelled).json()
    assert answer["unwatched"] == ["shop@production"]
    bad = assert_problem(
        api.post(AM_PATH + "?service=shop&environment=no%20such", token, json=unlabelled), 400
    )
    assert bad["detail"].startswith("environment:")
    labelled = webhook(alert(labels={"service": "shop", "environment": "eu/west"}))
    bad = assert_problem(api.post(AM_PATH, token, json=labelled), 400)
    assert "alerts.0.labels.environment" in bad["detail"]
