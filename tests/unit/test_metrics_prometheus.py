"""The Prometheus exposition from facts in memory: histogram buckets hold values up to
and including their bound, a rehearsal adds to no production metric, and a server's
collector reads a fresh dataset on every scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from backout.metrics import Dataset, RunFact, Window, collector, exposition
from backout.metrics.facts import outcome_of

T = 1_800_000_000.0


def fact(
    run_id: str, mode: str, restore: float | None, *, detect: float = 60.0, service: str = "shop"
) -> RunFact:
    """A run created at T; a backout ``detect`` s in that restores ``restore`` s later."""
    backout = None if restore is None else T + detect
    finished = T + 100 if restore is None else T + detect + restore
    result = "promoted" if restore is None else "backed_out"
    return RunFact(
        run_id=run_id,
        plan=service,
        service=service,
        environment="",
        mode=mode,
        outcome=outcome_of(
            mode, "succeeded", result if mode != "rehearsal" else "rehearsed", backout
        ),
        created_at=T,
        started_at=T,
        detected_at=backout,
        triggers=0 if backout is None else 1,
        backout_at=backout,
        finished_at=finished,
    )


def dataset(runs: list[RunFact]) -> Dataset:
    return Dataset(Window(None, T + 86400), {}, runs, [], {}, {})


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_bucket_counts_values_up_to_and_including_its_bound() -> None:
    data = dataset([fact("a", "deploy", 3600 - 60), fact("b", "deploy", 3600.5 - 60)])
    found = samples(exposition(data))
    deploy = {("service", "shop"), ("environment", ""), ("start", "deploy")}
    # a: restored 3600 s after its deploy, exactly on the 1-hour bound; b: half a second over
    assert (
        found[("backout_recovery_time_seconds_bucket", frozenset({*deploy, ("le", "3600.0")}))] == 1
    )
    assert (
        found[("backout_recovery_time_seconds_bucket", frozenset({*deploy, ("le", "7200.0")}))] == 2
    )
    assert found[("backout_recovery_time_seconds_count", frozenset(deploy))] == 2
    assert found[("backout_recovery_time_seconds_sum", frozenset(deploy))] == 7200.5


def test_a_rehearsal_adds_to_no_production_metric() -> None:
    data = dataset([fact("a", "deploy", None), fact("r", "rehearsal", 30)])
    found = samples(exposition(data))
    shop = frozenset({("service", "shop"), ("environment", "")})
    assert found[("backout_deployments_total", shop)] == 1
    assert found[("backout_failed_deployments_total", shop)] == 0
    assert found[("backout_change_failure_ratio", shop)] == 0
    rehearsal = frozenset({*shop, ("mode", "rehearsal"), ("outcome", "rehearsed")})
    assert found[("backout_runs_total", rehearsal)] == 1
    assert not [key for key in found if key[0].startswith("backout_backout_duration")]


def test_a_collector_reads_a_fresh_dataset_on_every_scrape() -> None:
    runs: list[RunFact] = []
    loads = 0

    def load() -> Dataset:
        nonlocal loads
        loads += 1
        return dataset(list(runs))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector(load))
    shop = frozenset({("service", "shop"), ("environment", "")})
    runs.append(fact("a", "deploy", None))
    first = samples(generate_latest(registry).decode())
    runs.append(fact("b", "deploy", 120))
    second = samples(generate_latest(registry).decode())
    assert loads == 2
    assert first[("backout_deployments_total", shop)] == 1
    assert second[("backout_deployments_total", shop)] == 2
    assert second[("backout_failed_deployments_total", shop)] == 1
