"""`backout metrics` on SQLite and PostgreSQL: the published counting cases (DevLake's
4 of 23, several triggers on one deploy, a rehearsal), recovery distributions on known
durations, the window's edges, filters, and every output of the CLI.

Bulk and edge cases are journals written straight into the store (rows as the engine
writes them: a ``runs`` row and its ``journal`` events); test_metrics_engine.py checks
that runs made by the real engine are read the same way."""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families

from backout.cli import cli
from backout.commands import Caller
from backout.commands.metrics import metrics
from backout.metrics import Window
from backout.metrics.figures import Figures
from backout.store import audit
from backout.store.db import Store
from backout.store.models import EventRow, RehearsalRow, RunRow

DAY = 86400.0
NOW = time.time()
T0 = NOW - 10 * DAY  # every seeded run starts after this, well inside a 30-day window
_ids = itertools.count(1)


class Seed:
    """Runs written as the engine writes them: a row, then its journal, one event per
    ``(kind, seconds after the start, data)``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(
        self,
        mode: str,
        at: float,
        events: Sequence[tuple[str, float, dict[str, Any]]],
        *,
        service: str = "shop",
        environment: str | None = None,
        owner: str | None = "payments",
        plan: str | None = None,
        release: str | None = None,
    ) -> str:
        run_id = f"r{next(_ids):011d}"
        key = f"{service}@{environment}" if environment else service
        finished = [e for e in events if e[0] == "run_finished"]
        doc: dict[str, Any] = {
            "plan": {"plan": plan or service, "service": service, "owner": owner},
            "base_dir": "/tmp",
            "environment": environment,
        }
        if mode != "backout":
            doc["mode"] = mode
        if release:
            doc["release"] = release
        journal = [("run_created", 0.0, {}), ("run_started", 0.0, {}), *events]
        with self.store.session() as session:
            session.add(
                RunRow(
                    id=run_id,
                    plan=plan or service,
                    service=key,
                    plan_file="plan.yaml",
                    plan_version="v1",
                    plan_doc=doc,
                    mode=mode,
                    status=finished[-1][2]["outcome"] if finished else "running",
                    actor="test",
                    created_at=at,
                    finished_at=at + finished[-1][1] if finished else None,
                    message="",
                )
            )
            session.flush()
            for seq, (kind, offset, data) in enumerate(journal, start=1):
                session.add(EventRow(run_id=run_id, seq=seq, at=at + offset, kind=kind, data=data))
        return run_id

    # the shapes the cases use -------------------------------------------------------
    def promoted(self, at: float, **kw: Any) -> str:
        done = {"outcome": "succeeded", "result": "promoted"}
        return self.run("deploy", at, [("promoted", 60, {}), ("run_finished", 60, done)], **kw)

    def healthy(self, at: float, **kw: Any) -> str:
        done = {"outcome": "succeeded", "result": "healthy"}
        return self.run("watch", at, [("watch_started", 1, {}), ("run_finished", 90, done)], **kw)

    def backed_out(
        self,
        at: float,
        detect: float = 30,
        restore: float = 120,
        triggers: int = 1,
        mode: str = "deploy",
        **kw: Any,
    ) -> str:
        """A deploy (or watch) whose trigger fired ``detect`` s in, restored ``restore`` s
        after the detection; ``triggers`` > 1: more trigger_fired events (another trigger,
        a re-emitted alert) before the backout finishes."""
        fired = [
            ("trigger_fired", detect + i, {"trigger": f"t{i}", "summary": "errors"})
            for i in range(triggers)
        ]
        events = [
            fired[0],
            ("backout_started", detect, {"trigger": "t0"}),
            *fired[1:],
            ("run_finished", detect + restore, {"outcome": "succeeded", "result": "backed_out"}),
        ]
        return self.run(mode, at, events, **kw)

    def backout_failed(self, at: float, **kw: Any) -> str:
        done = {"outcome": "failed", "result": "failed"}
        events = [
            ("trigger_fired", 20, {"trigger": "t"}),
            ("backout_started", 20, {"trigger": "t"}),
            ("run_finished", 50, done),
        ]
        return self.run("deploy", at, events, **kw)

    def manual(self, at: float, took: float = 40, ok: bool = True, **kw: Any) -> str:
        done = {"outcome": "succeeded" if ok else "failed"}
        return self.run("backout", at, [("run_finished", took, done)], **kw)

    def rehearsal(self, at: float, passed: bool = True, plan: str = "shop") -> str:
        done = {"outcome": "succeeded" if passed else "failed"}
        done["result"] = "rehearsed" if passed else "failed"
        run_id = self.run(
            "rehearsal",
            at,
            [
                ("backout_started", 5, {"trigger": "rehearsal"}),
                ("trigger_fired", 5, {"trigger": "rehearsal"}),
                ("run_finished", 30, done),
            ],
            plan=plan,
        )
        with self.store.session() as session:
            session.add(
                RehearsalRow(
                    plan=plan,
                    plan_version="v1",
                    run_id=run_id,
                    outcome="succeeded" if passed else "failed",
                    duration_s=25.0,
                    at=at + 30,
                    service="shop",
                    environment=None,
                    actor="test",
                    message="",
                    phases={},
                    faults=[],
                )
            )
        return run_id


@pytest.fixture
def store(store_url: str) -> Any:
    with Store(store_url) as opened:
        yield opened.open()  # an empty store, as a first command leaves it


@pytest.fixture
def seed(store: Store) -> Seed:
    return Seed(store)


def figures(store: Store, since: float | None = NOW - 30 * DAY, **filters: Any) -> Figures:
    until = filters.pop("until", time.time() + 1)
    return metrics(Caller(store, "test"), Window(since, until), **filters).figures


def hours(n: float) -> float:
    return T0 + n * 3600


# --- the published cases -------------------------------------------------------------


def test_devlake_case_4_failed_of_23_is_17_4_percent_not_26_1(store: Store, seed: Seed) -> None:
    """DevLake counted incidents (6) instead of failed deployments (4): 6/23 = 26.1%.
    Here 2 of the 4 failed deploys have a second trigger, and 2 incidents are backouts run
    by hand with no deploy: still 4 failed deployments of 23."""
    for n in range(19):
        seed.promoted(hours(n))
    for n, triggers in enumerate((2, 2, 1, 1)):
        seed.backed_out(hours(20 + n), triggers=triggers)
    seed.manual(hours(30))
    seed.manual(hours(31))
    f = figures(store)
    assert f.stability.deployments == 23
    assert f.stability.failed_deployments == 4
    assert f.stability.change_failure_rate == pytest.approx(4 / 23, abs=1e-6)
    assert f"{(f.stability.change_failure_rate or 0) * 100:.1f}%" == "17.4%"
    assert f.unplanned_backouts == 2
    assert f.dora["change_failure_rate"] == "low"  # 17.4% > 15%
    assert f.runs == {"promoted": 19, "backed_out": 6}


def test_a_deploy_with_several_triggers_and_a_re_emitted_event_counts_once(
    store: Store, seed: Seed
) -> None:
    seed.backed_out(hours(1), detect=30, restore=100, triggers=4)
    seed.promoted(hours(2))
    f = figures(store)
    assert (f.stability.deployments, f.stability.failed_deployments) == (2, 1)
    assert f.stability.change_failure_rate == 0.5
    assert f.stability.time_to_detect.median_s == 30  # from the first trigger
    assert f.stability.recovery_detection.median_s == 100
    assert f.stability.recovery_deploy.median_s == 130


def test_a_rehearsal_is_never_a_deployment_nor_a_failure(store: Store, seed: Seed) -> None:
    seed.promoted(hours(1))
    seed.rehearsal(hours(2), passed=True)
    seed.rehearsal(hours(3), passed=False)
    seed.rehearsal(hours(4), passed=True, plan="cart")
    f = figures(store)
    assert (f.stability.deployments, f.stability.failed_deployments) == (1, 0)
    assert f.stability.change_failure_rate == 0
    assert f.stability.backout_duration.count == 0
    assert f.unplanned_backouts == 0
    assert f.runs["rehearsed"] == 2
    assert f.runs["rehearsal_failed"] == 1
    assert (f.rehearsals.total, f.rehearsals.passed) == (3, 2)
    assert f.rehearsals.pass_rate == pytest.approx(2 / 3, abs=1e-6)
    fresh = {p.plan: p.days_since_pass for p in f.rehearsals.plans}
    assert fresh["cart"] is not None
    assert fresh["shop"] is not None
    assert fresh["shop"] > fresh["cart"]  # shop last passed an hour earlier (hours(2))


def test_recovery_median_and_p90_on_known_durations(store: Store, seed: Seed) -> None:
    restores = [60, 120, 180, 240, 1200]
    for n, restore in enumerate(restores):
        seed.backed_out(hours(n), detect=10, restore=restore)
    s = figures(store).stability
    assert s.recovery_detection.count == 5
    assert s.recovery_detection.median_s == 180
    # rank 0.9 * (5 - 1) = 3.6: 240 + 0.6 * (1200 - 240)
    assert s.recovery_detection.p90_s == pytest.approx(816)
    assert s.recovery_deploy.median_s == 190
    assert s.recovery_deploy.p90_s == pytest.approx(826)
    assert s.backout_duration.median_s == 180  # backout_started is the detection here
    assert s.time_to_detect.median_s == 10


def test_a_failed_backout_is_a_failed_deployment_never_restored(store: Store, seed: Seed) -> None:
    seed.backout_failed(hours(1))
    seed.backed_out(hours(2), detect=10, restore=50)
    seed.manual(hours(3), ok=False)
    f = figures(store)
    assert f.stability.failed_deployments == 2
    assert f.stability.unrestored == 1
    assert f.stability.recovery_deploy.count == 1  # only the restored one
    assert f.stability.time_to_detect.count == 2  # both were detected
    assert (f.unplanned_backouts, f.unplanned_restored) == (1, 0)
    assert f.runs["backout_failed"] == 2


def test_a_redeploy_of_the_same_release_is_a_new_deployment(store: Store, seed: Seed) -> None:
    seed.promoted(hours(1), release="v7")
    seed.backed_out(hours(2), release="v8")
    seed.promoted(hours(3), release="v8")  # the same release again, after a fix elsewhere
    f = figures(store)
    assert (f.stability.deployments, f.stability.failed_deployments) == (3, 1)


def test_a_watch_is_a_deployment_and_a_refused_deploy_is_not(store: Store, seed: Seed) -> None:
    seed.healthy(hours(1))
    seed.backed_out(hours(2), mode="watch")
    refused = {"outcome": "failed", "message": "not started: no baseline for trigger"}
    seed.run("deploy", hours(3), [("run_finished", 1, refused)])
    f = figures(store)
    assert (f.stability.deployments, f.stability.failed_deployments) == (2, 1)
    assert f.runs["not_started"] == 1


def test_the_journal_is_read_as_it_stood_at_the_window_end(store: Store, seed: Seed) -> None:
    """A deploy still running at --until is a deployment in progress, not yet failed,
    even though it backed out later; a run created before --since is not counted."""
    seed.backed_out(hours(10), detect=3600, restore=600)
    seed.promoted(T0 - 5 * DAY)
    before = figures(store, since=T0 - DAY, until=hours(10) + 60)
    assert (before.stability.deployments, before.stability.failed_deployments) == (1, 0)
    assert before.in_progress == 1
    assert before.runs == {"in_progress": 1}
    after = figures(store, since=T0 - DAY)
    assert (after.stability.deployments, after.stability.failed_deployments) == (1, 1)
    assert after.in_progress == 0
    every = figures(store, since=None)
    assert every.stability.deployments == 2


def test_filters_by_service_environment_team_and_since(store: Store, seed: Seed) -> None:
    seed.backed_out(hours(1), service="shop", environment="production")
    seed.promoted(hours(2), service="shop", environment="staging")
    seed.promoted(hours(3), service="shopfront")  # a name that starts like "shop"
    seed.promoted(hours(4), service="cart", owner="checkout")
    seed.promoted(NOW - 40 * DAY, service="shop")
    assert figures(store).stability.deployments == 4
    shop = figures(store, service="shop")
    assert (shop.stability.deployments, shop.stability.failed_deployments) == (2, 1)
    assert {(s.service, s.environment) for s in shop.services} == {
        ("shop", "production"),
        ("shop", "staging"),
    }
    production = figures(store, service="shop", environment="production")
    assert production.stability.deployments == 1
    assert production.stability.change_failure_rate == 1.0
    assert figures(store, team="checkout").stability.deployments == 1
    assert figures(store, since=None, service="shop").stability.deployments == 3


def test_time_to_first_update_comes_from_the_audited_update(store: Store, seed: Seed) -> None:
    failed = seed.backed_out(hours(1))
    other = seed.backed_out(hours(2))
    with store.session() as session:
        audit.append(session, "alice", "run.updated", f"run:{failed}", {"first_update_s": 240.0})
        audit.append(session, "alice", "run.updated", f"run:{failed}", {"message": "still"})
        audit.append(session, "bob", "run.updated", f"run:{other}", {"first_update_s": 60.0})
    update = figures(store).time_to_first_update
    assert (update.count, update.median_s) == (2, 150)
    assert update.p90_s == pytest.approx(222)


# --- the CLI -------------------------------------------------------------------------


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, "metrics", *args], obj={})


def test_empty_store_says_no_runs_and_exits_0(store: Store) -> None:
    result = invoke(store.url, "--since", "7d")
    assert result.exit_code == 0, result.output
    assert "no runs in the window" in result.output
    shape = json.loads(invoke(store.url, "--json").stdout)
    assert shape["deployments"] == 0
    assert shape["change_failure_rate"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a time"),
        (["--until", "2026-13-01"], "--until '2026-13-01' is not a time"),
        (["--since", "1d", "--until", "3d"], "the window is empty"),
        (["--json", "--csv"], "--json and --csv cannot be combined"),
        (["--csv", "--prometheus"], "--csv and --prometheus cannot be combined"),
        (["--output", "x.txt"], "--output writes --json, --csv or --prometheus"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    store: Store, args: list[str], message: str
) -> None:
    result = invoke(store.url, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def _devlake(seed: Seed) -> None:
    for n in range(19):
        seed.promoted(hours(n), service="shop" if n % 2 else "cart")
    for n in range(4):
        seed.backed_out(hours(20 + n), detect=60, restore=300, triggers=2 if n < 2 else 1)
    seed.manual(hours(30))
    seed.rehearsal(hours(31))


def test_text_table_fits_80_columns_and_names_the_figures(store: Store, seed: Seed) -> None:
    _devlake(seed)
    result = invoke(store.url, "--since", "30d")
    assert result.exit_code == 0, result.output
    text = result.output
    for words in (
        "deployments",
        "change failure rate",
        "17.4%",
        "recovery: deploy → restored",
        "median 6m, p90 6m (n=4)",
        "by service",
        "rehearsal freshness",
    ):
        assert words in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_json_shape(store: Store, seed: Seed) -> None:
    _devlake(seed)
    data = json.loads(invoke(store.url, "--json", "--since", "30d").stdout)
    assert data["schema"] == 1
    assert set(data) >= {
        "window",
        "filters",
        "runs",
        "deployments",
        "failed_deployments",
        "change_failure_rate",
        "unrestored",
        "recovery_deploy",
        "recovery_detection",
        "time_to_detect",
        "backout_duration",
        "in_progress",
        "deployment_frequency",
        "unplanned_backouts",
        "time_to_first_update",
        "rehearsals",
        "dora",
        "services",
    }
    assert (data["deployments"], data["failed_deployments"]) == (23, 4)
    assert data["change_failure_rate"] == pytest.approx(0.173913)
    assert data["recovery_detection"] == {
        "count": 4,
        "median_s": 300.0,
        "p90_s": 300.0,
        "mean_s": 300.0,
    }
    assert data["window"]["days"] == pytest.approx(30)
    assert data["unplanned_backouts"] == {"total": 1, "restored": 1}
    assert data["rehearsals"]["plans"][0]["plan"] == "cart"
    assert set(data["dora"]) == {"deployment_frequency", "change_failure_rate", "recovery_time"}
    assert data["dora"]["recovery_time"] == "elite"
    assert {s["service"] for s in data["services"]} == {"cart", "shop"}


def test_csv_header_and_rows(store: Store, seed: Seed) -> None:
    _devlake(seed)
    rows = list(csv.DictReader(io.StringIO(invoke(store.url, "--csv").stdout)))
    assert rows[0]["scope"] == "all"
    assert (rows[0]["deployments"], rows[0]["failed_deployments"]) == ("23", "4")
    assert float(rows[0]["change_failure_rate"]) == pytest.approx(4 / 23, abs=1e-6)
    assert [(r["scope"], r["service"]) for r in rows[1:]] == [
        ("service", "cart"),
        ("service", "shop"),
    ]


def test_cli_filters_and_window(store: Store, seed: Seed) -> None:
    _devlake(seed)
    cart = json.loads(invoke(store.url, "--json", "--service", "cart").stdout)
    assert (cart["deployments"], cart["failed_deployments"]) == (10, 0)
    assert cart["filters"] == {"service": "cart", "environment": None, "team": None}
    nobody = json.loads(invoke(store.url, "--json", "--team", "nobody").stdout)
    assert nobody["runs"]["total"] == 0
    early = json.loads(invoke(store.url, "--json", "--since", "30d", "--until", "20d").stdout)
    assert early["deployments"] == 0  # every run was seeded less than 10 days ago
    assert early["window"]["days"] == pytest.approx(10)


def test_prometheus_exposition_parses_back(store: Store, seed: Seed, tmp_path: Path) -> None:
    _devlake(seed)
    out = tmp_path / "backout.prom"
    result = invoke(store.url, "--prometheus", "--output", str(out))
    assert result.exit_code == 0, result.output
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(out.read_text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    shop = {"service": "shop", "environment": ""}
    assert value("backout_deployments_total", **shop) == 9 + 4
    assert value("backout_failed_deployments_total", **shop) == 4
    assert value("backout_change_failure_ratio", **shop) == pytest.approx(4 / 13)
    assert value("backout_runs_total", **shop, mode="deploy", outcome="backed_out") == 4
    assert value("backout_runs_total", **shop, mode="rehearsal", outcome="rehearsed") == 1
    assert value("backout_unplanned_backouts_total", **shop) == 1
    assert value("backout_recovery_time_seconds_count", **shop, start="detection") == 4
    assert value("backout_recovery_time_seconds_bucket", **shop, start="deploy", le="300.0") == 0
    assert value("backout_recovery_time_seconds_bucket", **shop, start="deploy", le="600.0") == 4
    assert value("backout_recovery_time_seconds_sum", **shop, start="deploy") == 4 * 360
    assert value("backout_backout_duration_seconds_count", **shop, mode="backout") == 1
    assert value("backout_rehearsals_total", plan="shop", outcome="passed") == 1
    assert value("backout_rehearsal_last_pass_timestamp_seconds", plan="shop") > T0
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, by a rename
