"""Feature flags on SQLite and PostgreSQL: the store, OpenFeature evaluation, the ``flag``
action and its reverse (the kill switch), the audit trail, the CLI, and the OFREP server
answering real HTTP requests."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from pydantic import ValidationError

from backout.actions import ACTIONS, Context
from backout.actions.flag import FlagAction, FlagOptions, flag_store_url
from backout.cli import cli
from backout.commands import flags as service
from backout.flags import ErrorCode, FlagChange, FlagState, Reason, bucket, evaluate
from backout.settings import Settings
from backout.store import audit
from backout.store.db import open_store
from backout.store.models import AuditRow
from tests.callers import caller
from tests.integration.flag_server import flag_server, start_serve
from tests.services import stop_process


def settings(url: str, actor: str = "ci-bot") -> Settings:
    return Settings(database_url=url, actor=actor)


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, "--actor", "ci-bot", *args], obj={})


def audit_records(url: str) -> list[AuditRow]:
    store = open_store(url)
    try:
        with store.session() as session:
            assert audit.verify(session).ok
            return audit.log(session, action="flag.set")
    finally:
        store.dispose()


# --- evaluation (pure) ----------------------------------------------------------------------
def test_reasons_follow_openfeature() -> None:
    on = FlagState("f", enabled=True, percentage=100, version=3)
    assert evaluate("f", on, {}).to_ofrep() == {
        "key": "f",
        "value": True,
        "variant": "on",
        "reason": "STATIC",
        "metadata": {"version": 3, "percentage": 100},
    }
    off = FlagState("f", enabled=False)
    assert (evaluate("f", off, {"targetingKey": "u"}).reason, evaluate("f", off, {}).value) == (
        Reason.DISABLED,
        False,
    )
    nobody = FlagState("f", enabled=True, percentage=0)
    assert evaluate("f", nobody, {"targetingKey": "u"}).reason is Reason.STATIC
    split = FlagState("f", enabled=True, percentage=50)
    assert evaluate("f", split, {"targetingKey": "u"}).reason is Reason.SPLIT
    fallback = evaluate("f", split, {})  # nothing to split on: the off variant, DEFAULT
    assert (fallback.reason, fallback.variant, fallback.value) == (Reason.DEFAULT, "off", False)
    missing = evaluate("nope", None, {})
    assert (missing.reason, missing.error_code) == (Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)
    assert missing.to_ofrep()["errorCode"] == "FLAG_NOT_FOUND"
    bad = evaluate("f", on, {"targetingKey": 42})
    assert bad.error_code is ErrorCode.INVALID_CONTEXT


def test_a_stored_null_is_served_as_the_code_default() -> None:
    """A value OFREP cannot carry (stored before null and NaN were refused) is never sent as
    "value": null: the answer has no value, which tells the app to use its code default."""
    for unservable in (None, math.nan, {"a": [math.inf]}):
        flag = FlagState("f", enabled=True, variants={"on": unservable, "off": False}, version=2)
        answer = evaluate("f", flag, {}).to_ofrep()
        assert answer == {
            "key": "f",
            "variant": "on",
            "reason": "DEFAULT",
            "metadata": {"version": 2, "percentage": 100},
        }
    off = FlagState("f", enabled=False, variants={"on": None, "off": False})
    assert evaluate("f", off, {}).to_ofrep()["value"] is False  # the other variant is fine
    nested = FlagState("f", enabled=True, variants={"on": {"a": None}, "off": False})
    assert evaluate("f", nested, {}).to_ofrep()["value"] == {"a": None}  # an object may


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "variant 'on' is null, which no OFREP value type allows"),
        (math.nan, "variant 'on' holds NaN or Infinity, which JSON cannot carry"),
        ({"a": [1, -math.inf]}, "variant 'on' holds NaN or Infinity"),
    ],
)
def test_a_change_cannot_store_what_apps_cannot_be_served(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FlagChange(variants={"on": value, "off": False})


def test_split_is_stable_proportional_and_only_grows() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    quarter = FlagState("new-checkout", enabled=True, percentage=25)
    half = FlagState("new-checkout", enabled=True, percentage=50)
    in_quarter = {u for u in users if evaluate(quarter.key, quarter, {"targetingKey": u}).value}
    in_half = {u for u in users if evaluate(half.key, half, {"targetingKey": u}).value}
    assert 2300 <= len(in_quarter) <= 2700
    assert 4700 <= len(in_half) <= 5300
    assert in_quarter <= in_half  # raising the percentage keeps everyone already in
    again = {u for u in users if evaluate(quarter.key, quarter, {"targetingKey": u}).value}
    assert again == in_quarter
    other = FlagState("other", enabled=True, percentage=25)
    in_other = {u for u in users if evaluate(other.key, other, {"targetingKey": u}).value}
    assert in_other != in_quarter  # each flag splits users on its own


def test_buckets_are_pinned() -> None:
    # sha256, not hash(): the same bucket in every process, on every machine and version
    assert [bucket("new-checkout", f"user-{i}") for i in range(6)] == [3, 34, 77, 40, 58, 25]


# --- store + audit --------------------------------------------------------------------------
def test_set_get_list_and_audit(store_url: str) -> None:
    first = service.set_flag(caller(settings(store_url)), "new-checkout", FlagChange(enabled=True))
    assert first.before is None
    assert (first.after.enabled, first.after.percentage, first.after.version) == (True, 100, 1)
    second = service.set_flag(
        caller(settings(store_url, "alice")),
        "new-checkout",
        FlagChange(
            percentage=25,
            variants={"v2": "new", "v1": "old"},
            on_variant="v2",
            off_variant="v1",
        ),
    )
    assert second.before == first.after
    flag = service.get_flag(caller(settings(store_url)), "new-checkout")
    assert flag == second.after
    assert (flag.version, flag.updated_by, flag.variants) == (
        2,
        "alice",
        {"v2": "new", "v1": "old"},
    )
    assert [f.key for f in service.list_flags(caller(settings(store_url)))] == ["new-checkout"]
    result = service.evaluate_flag(
        caller(settings(store_url)), "new-checkout", {"targetingKey": "u"}
    )
    assert result.value in ("new", "old")
    assert result.reason is Reason.SPLIT

    records = audit_records(store_url)
    assert [(r.actor, r.subject) for r in records] == [
        ("ci-bot", "flag:new-checkout"),
        ("alice", "flag:new-checkout"),
    ]
    assert records[0].details["before"] is None
    assert records[1].details["before"]["percentage"] == 100
    assert records[1].details["after"]["percentage"] == 25


def test_variants_must_exist(store_url: str) -> None:
    from backout.errors import UsageError

    with pytest.raises(UsageError, match="on_variant 'gone' is not one of its variants"):
        service.set_flag(caller(settings(store_url)), "f", FlagChange(on_variant="gone"))
    with pytest.raises(UsageError, match="no flag 'f'"):
        service.get_flag(caller(settings(store_url)), "f")  # the failed change left nothing behind
    assert audit_records(store_url) == []


# --- the flag action ------------------------------------------------------------------------
@pytest.fixture
def run_store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store a run uses, as the action finds it (BACKOUT_DATABASE_URL)."""
    monkeypatch.setenv("BACKOUT_DATABASE_URL", store_url)
    monkeypatch.setenv("BACKOUT_ACTOR", "deploy-bot")
    return store_url


def test_action_and_its_reverse_are_the_kill_switch(run_store: str, tmp_path: Path) -> None:
    assert flag_store_url() == run_store
    ctx = Context(workdir=tmp_path, timeout=10)
    action = ACTIONS.get("flag")
    assert isinstance(action, FlagAction)
    service.set_flag(
        caller(settings(run_store)), "new-checkout", FlagChange(enabled=False, percentage=0)
    )

    rollout = FlagOptions(key="new-checkout", enabled=True, percentage=25)
    assert action.describe(rollout) == "set flag new-checkout on at 25%"
    done = action.execute(rollout, ctx)
    assert done.ok, done
    assert done.summary == "flag new-checkout: on at 25% (was off; version 2)"
    live = service.get_flag(caller(settings(run_store)), "new-checkout")
    assert (live.enabled, live.percentage, live.updated_by) == (True, 25, "deploy-bot")

    detail = json.loads(json.dumps(done.detail))  # as journaled
    killed = action.reverse(rollout, detail, ctx)
    assert killed is not None
    assert killed.ok, killed
    back = service.get_flag(caller(settings(run_store)), "new-checkout")
    assert (back.enabled, back.percentage, back.version) == (False, 0, 3)
    assert evaluate("new-checkout", back, {"targetingKey": "u"}).reason is Reason.DISABLED

    sources = [r.details["source"] for r in audit_records(run_store)]
    assert sources == ["cli", "plan", "reverse"]


def test_reverse_of_a_created_flag_turns_it_off(run_store: str, tmp_path: Path) -> None:
    ctx = Context(workdir=tmp_path, timeout=10)
    options = FlagOptions(key="brand-new", enabled=True)
    done = FlagAction().execute(options, ctx)
    assert done.detail["previous"] is None
    assert FlagAction().reverse(options, done.detail, ctx).ok
    flag = service.get_flag(caller(settings(run_store)), "brand-new")
    assert flag.enabled is False


def test_reverse_puts_back_a_legacy_null_as_it_was(run_store: str, tmp_path: Path) -> None:
    legacy = FlagChange.model_construct(enabled=True, variants={"on": None, "off": False})
    service.set_flag(caller(settings(run_store)), "old", legacy)
    ctx = Context(workdir=tmp_path, timeout=10)
    options = FlagOptions(key="old", enabled=False)
    done = FlagAction().execute(options, ctx)
    assert done.ok, done
    back = FlagAction().reverse(options, json.loads(json.dumps(done.detail)), ctx)
    assert back is not None
    assert back.ok, back
    restored = service.get_flag(caller(settings(run_store)), "old")
    assert (restored.enabled, restored.variants) == (True, {"on": None, "off": False})


def test_action_failure_is_an_outcome_not_a_traceback(run_store: str, tmp_path: Path) -> None:
    outcome = FlagAction().execute(
        FlagOptions(key="f", on_variant="missing"), Context(workdir=tmp_path, timeout=10)
    )
    assert not outcome.ok
    assert "not one of its variants" in outcome.summary


def test_a_plan_step_sets_the_flag_and_apps_see_it(
    run_store: str, ofrep: str, tmp_path: Path
) -> None:
    """The kill switch as a plan: the engine runs the flag step, then the verify check asks
    the OFREP server what apps are told now."""
    service.set_flag(caller(settings(run_store)), "new-checkout", FlagChange(enabled=True))
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"""plan: flag-off
steps:
  - name: kill new-checkout
    flag: {{key: new-checkout, enabled: false}}
    timeout: 20s
verify:
  - name: apps are told it is off
    http:
      url: {ofrep}/ofrep/v1/evaluate/flags/new-checkout
      method: POST
      json: reason
      equals: DISABLED
"""
    )
    result = CliRunner().invoke(cli, ["run", str(plan), "--json"], obj={})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["status"], report["verified"]) == ("succeeded", True)
    assert service.get_flag(caller(settings(run_store)), "new-checkout").enabled is False


# --- CLI ------------------------------------------------------------------------------------
def test_cli_set_get_list(store_url: str) -> None:
    created = invoke(store_url, "flags", "set", "new-checkout", "--on", "--percentage", "25")
    assert created.exit_code == 0, created.output
    assert "new-checkout" in created.stdout
    assert "25%" in created.stdout
    variants = invoke(
        store_url,
        "flags",
        "set",
        "banner",
        "--on",
        "--variant",
        'blue="#00f"',
        "--variant",
        "red=#f00",
        "--on-variant",
        "blue",
        "--off-variant",
        "red",
        "--json",
    )
    assert variants.exit_code == 0, variants.output
    assert json.loads(variants.stdout)["after"]["variants"] == {"blue": "#00f", "red": "#f00"}
    got = invoke(store_url, "flags", "get", "new-checkout", "--for", "user-7", "--json")
    assert got.exit_code == 0, got.output
    data = json.loads(got.stdout)
    assert (data["percentage"], data["updated_by"]) == (25, "ci-bot")
    assert data["evaluation"]["reason"] == "SPLIT"
    constants = invoke(
        store_url,
        "flags",
        "set",
        "odd",
        "--variant",
        "on=NaN",
        "--variant",
        "off=-Infinity",
        "--json",
    )
    assert constants.exit_code == 0, constants.output  # not JSON, so text, as documented
    assert json.loads(constants.stdout)["after"]["variants"] == {"on": "NaN", "off": "-Infinity"}
    listed = json.loads(invoke(store_url, "flags", "list", "--json").stdout)
    assert [f["key"] for f in listed] == ["banner", "new-checkout", "odd"]
    human = invoke(store_url, "flags", "list")
    assert "new-checkout" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flags", "get", "nope"], "no store at"),  # reading never creates a store
        (["flags", "set", "f"], "nothing to change"),
        (["flags", "set", "bad/key", "--on"], "is not a flag key"),
        (["flags", "set", "f", "--percentage", "101"], "101 is not in the range"),
        (["flags", "set", "f", "--variant", "novalue"], "write NAME=VALUE"),
        (
            ["flags", "set", "f", "--on", "--variant", "on=null", "--variant", "off=false"],
            "--variant 'on=null': null is not a value apps can be served",
        ),
    ],
)
def test_cli_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke(f"sqlite:///{tmp_path / 'b.db'}", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert "hint: " in result.output or "Usage:" in result.output


def test_get_of_a_missing_flag_exits_2(store_url: str) -> None:
    service.set_flag(caller(settings(store_url)), "other", FlagChange(enabled=False))
    result = invoke(store_url, "flags", "get", "nope")
    assert result.exit_code == 2
    assert "no flag 'nope'" in result.output


def test_cli_shows_a_code_default(store_url: str) -> None:
    legacy = FlagChange.model_construct(enabled=True, variants={"on": None, "off": False})
    service.set_flag(caller(settings(store_url)), "old", legacy)
    got = invoke(store_url, "flags", "get", "old", "--for", "user-7")
    assert got.exit_code == 0, got.output
    assert 'for user-7: on = "the app\'s code default" (DEFAULT)' in got.stdout


# --- the OFREP server, over real HTTP -------------------------------------------------------
@pytest.fixture
def ofrep(store_url: str) -> Iterator[str]:
    with flag_server(store_url) as running:
        yield running.url


def test_ofrep_single_bulk_and_list(ofrep: str, store_url: str) -> None:
    service.set_flag(
        caller(settings(store_url)), "new-checkout", FlagChange(enabled=True, percentage=25)
    )
    service.set_flag(caller(settings(store_url)), "dark-mode", FlagChange(enabled=False))
    with httpx.Client(base_url=ofrep, timeout=5) as http:
        one = http.post(
            "/ofrep/v1/evaluate/flags/new-checkout", json={"context": {"targetingKey": "user-1"}}
        )
        assert one.status_code == 200
        body = one.json()
        assert body["key"] == "new-checkout"
        assert body["reason"] == "SPLIT"
        assert body["variant"] in ("on", "off")
        assert body["value"] is (body["variant"] == "on")
        assert body["metadata"] == {"version": 1, "percentage": 25}

        missing = http.post("/ofrep/v1/evaluate/flags/nope", json={"context": {}})
        assert missing.status_code == 404
        assert missing.json()["errorCode"] == "FLAG_NOT_FOUND"
        garbage = http.post("/ofrep/v1/evaluate/flags/new-checkout", content=b"{not json")
        assert garbage.status_code == 400
        assert garbage.json()["errorCode"] == "PARSE_ERROR"
        wrong = http.post("/ofrep/v1/evaluate/flags/new-checkout", json={"context": []})
        assert wrong.json() == {
            "key": "new-checkout",
            "errorCode": "INVALID_CONTEXT",
            "errorDetails": "context must be a JSON object",
        }
        numeric = {"context": {"targetingKey": 7}}
        for path in ("/ofrep/v1/evaluate/flags/new-checkout", "/ofrep/v1/evaluate/flags"):
            refused = http.post(path, json=numeric)  # the bulk request fails whole, too
            assert (refused.status_code, refused.json()["errorCode"]) == (400, "INVALID_CONTEXT")
            assert refused.json()["errorDetails"] == "targetingKey must be a string, not int"

        bulk = http.post("/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "u"}})
        assert bulk.status_code == 200
        by_key = {flag["key"]: flag for flag in bulk.json()["flags"]}
        assert by_key["dark-mode"]["reason"] == "DISABLED"
        assert by_key["new-checkout"]["reason"] == "SPLIT"
        etag = bulk.headers["etag"]
        same = http.post(
            "/ofrep/v1/evaluate/flags",
            json={"context": {"targetingKey": "u"}},
            headers={"If-None-Match": etag},
        )
        assert same.status_code == 304

        # the kill switch reaches apps on their next request: no stale cache in between
        service.set_flag(caller(settings(store_url)), "new-checkout", FlagChange(enabled=False))
        after = http.post(
            "/ofrep/v1/evaluate/flags",
            json={"context": {"targetingKey": "u"}},
            headers={"If-None-Match": etag},
        )
        assert after.status_code == 200
        killed = {flag["key"]: flag for flag in after.json()["flags"]}["new-checkout"]
        assert (killed["reason"], killed["value"]) == ("DISABLED", False)

        assert http.get("/flags/new-checkout").json()["version"] == 2
        assert http.get("/flags/nope").status_code == 404
        listing = http.get("/flags").json()["flags"]
        assert [(f["key"], f["enabled"]) for f in listing] == [
            ("dark-mode", False),
            ("new-checkout", False),
        ]


def test_flags_serve_command_answers_over_http(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    service.set_flag(caller(settings(url)), "new-checkout", FlagChange(enabled=True))
    serve = start_serve(url, tmp_path / "serve.log")
    try:
        answer = httpx.post(f"{serve.url}/ofrep/v1/evaluate/flags/new-checkout", timeout=30)
        assert answer.json()["value"] is True
        assert answer.json()["reason"] == "STATIC"
    finally:
        stop_process(serve.process)
    assert f"on {serve.url} (no token)" in serve.output()
