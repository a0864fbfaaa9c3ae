"""Change records and rehearsals over the API (``/api/v1/changes``, ``/api/v1/rehearsals``):
real HTTP to the app the CLI serves, on SQLite and PostgreSQL, with the server's plan folder
(``backout server --plans DIR``) holding the plans changes and drills name.

The server is test_server.py's ``serve`` fixture; ``served`` gives it a plan folder by
handing it the folder, as ``backout server --plans`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backout.server.auth import DENIED
from tests.integration.test_server import Api, assert_no_secrets, assert_problem, serve

__all__ = ["serve"]  # the fixture, re-exported for pytest

SECRET = "sk-live-0123456789abcdef"  # the plan's secret: never in a response
SECRET_ENV = "BACKOUT_TEST_API_KEY"
ROLES = ("viewer", "operator", "approver", "admin")
OPERATORS = frozenset({"operator", "admin"})
APPROVERS = frozenset({"approver", "admin"})
REQUESTER = "requester"  # the operator who creates the changes the approvers decide on
REVIEWER = "reviewer"

# the policy below asks nothing of low and medium risk; of high, verify checks and an approval
WEB = f"""plan: web
service: web
risk: low
rto: 1m
secrets:
  api_key: {{env: {SECRET_ENV}}}
steps:
  - name: switch back
    run: ["true", "{{{{ secrets.api_key }}}}"]
    timeout: 5s
    idempotent: true
"""
BROKEN = """plan: broken
steps:
  - name: no kind
    timeout: 5s
"""
POLICY = """low: {}
medium: {}
high: {verify: true, approvals: 1}
critical: {}
"""


def write_plans(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "web.yaml").write_text(WEB, encoding="utf-8")
    (folder / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    return folder


@pytest.fixture
def served(
    serve: Callable[..., Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Api]:
    """``serve`` with the plan folder ``tmp_path/plans`` (web.yaml, broken.yaml), the policy
    in BACKOUT_POLICY and the plan's secret in its environment variable."""
    folder = write_plans(tmp_path / "plans")
    policy = tmp_path / "backout-policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    monkeypatch.setenv("BACKOUT_POLICY", str(policy))
    monkeypatch.setenv(SECRET_ENV, SECRET)

    def start(**kwargs: Any) -> Api:
        api = serve(plans=folder, **kwargs)
        api.secrets.append(SECRET)
        return api

    return start


# --- helpers: a change in each state, by the API -------------------------------------------
def ok(response: httpx.Response) -> Any:
    """The JSON of a successful answer."""
    assert response.status_code in (200, 201), response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def new_change(api: Api, *, risk: str | None = None, actor: str = REQUESTER) -> int:
    body: dict[str, Any] = {"plan": "web", "title": "Deploy web 2.4"}
    if risk:
        body["risk"] = risk
    response = api.post("/api/v1/changes", api.token("operator", actor), json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def approved_change(api: Api, **kw: Any) -> int:
    change_id = new_change(api, **kw)
    approve = api.post(
        f"/api/v1/changes/{change_id}/approve", api.token("approver", REVIEWER), json={}
    )
    assert ok(approve)["status"] == "approved"
    return change_id


def started_change(api: Api) -> int:
    change_id = approved_change(api)
    start = api.post(f"/api/v1/changes/{change_id}/start", api.token("operator"), json={})
    assert ok(start)["status"] == "in_progress"
    return change_id


def change(api: Api, change_id: int) -> Any:
    return ok(api.get(f"/api/v1/changes/{change_id}", api.token("viewer")))


# --- reads ----------------------------------------------------------------------------------
def test_changes_are_listed_filtered_and_shown(served: Callable[..., Api]) -> None:
    api = served()
    viewer = api.token("viewer")
    assert ok(api.get("/api/v1/changes", viewer)) == []
    first = new_change(api)
    second = approved_change(api)

    listed = ok(api.get("/api/v1/changes", viewer))
    assert [c["id"] for c in listed] == [second, first]  # newest first
    assert {c["plan"] for c in listed} == {"web"}
    approved = api.get("/api/v1/changes", viewer, params={"status": "approved"}).json()
    assert [c["id"] for c in approved] == [second]
    assert [c["id"] for c in api.get("/api/v1/changes", viewer, params={"limit": 1}).json()] == [
        second
    ]

    shown = change(api, second)
    assert (shown["id"], shown["title"], shown["status"]) == (second, "Deploy web 2.4", "approved")
    assert (shown["requester"], shown["service"]) == (REQUESTER, "web")
    assert shown["risk"] == shown["risk_computed"] == "medium"  # no verify: not low
    assert [(a["actor"], a["decision"], a["current"]) for a in shown["approvals"]] == [
        (REVIEWER, "approved", True)
    ]
    assert_no_secrets(api)


def test_reading_changes_refuses_what_it_cannot_answer(served: Callable[..., Api]) -> None:
    api = served()
    viewer = api.token("viewer")
    missing = assert_problem(api.get("/api/v1/changes/999", viewer), 404)
    assert "999" in missing["detail"]
    assert_problem(api.get("/api/v1/changes/abc", viewer), 422)
    bad_status = assert_problem(api.get("/api/v1/changes", viewer, params={"status": "x"}), 422)
    assert bad_status["errors"][0]["field"] == "query.status"
    assert_problem(api.get("/api/v1/changes", viewer, params={"limit": 0}), 422)
    assert_problem(api.get("/api/v1/changes"), 401)
    assert_problem(api.get("/api/v1/changes", "bo_not-a-token"), 401)
    assert_no_secrets(api)


# --- create ---------------------------------------------------------------------------------
def test_a_change_is_created_for_a_plan_of_the_folder_by_name(
    served: Callable[..., Api], tmp_path: Path
) -> None:
    api = served()
    operator = api.token("operator", "alice")
    body = {
        "plan": "web",
        "title": "Deploy web 2.4",
        "risk": "low",
        "window": "2026-12-01T22:00..23:30",
        "ref": "CHG0042",
    }
    made = ok(api.post("/api/v1/changes", operator, json=body))
    assert (made["status"], made["requester"], made["plan"], made["ref"]) == (
        "planned",
        "alice",
        "web",
        "CHG0042",
    )
    assert (made["risk"], made["risk_computed"]) == ("low", "medium")
    assert made["window"]
    assert made["plan_file"] == str((tmp_path / "plans" / "web.yaml").resolve())
    assert change(api, made["id"]) == made
    assert api.audited("change.created")  # the verb's audit record, as the CLI writes it
    assert_no_secrets(api)


def test_creating_a_change_refuses_a_plan_the_folder_lacks_or_cannot_load(
    served: Callable[..., Api],
) -> None:
    api = served()
    operator = api.token("operator")

    def create(**body: Any) -> Any:
        return api.post("/api/v1/changes", operator, json={"title": "t", **body})

    unknown = assert_problem(create(plan="nope"), 404)
    assert "broken, web" in unknown["hint"]  # the plans there are
    assert_problem(create(plan="../web"), 404)
    broken = assert_problem(create(plan="broken"), 422)
    assert "broken.yaml" in broken["detail"]
    window = assert_problem(create(plan="web", window="tomorrow"), 400)
    assert window["detail"] == "window 'tomorrow' needs START..END"
    assert "2026-12-01T22:00" in window["hint"]
    invalid = assert_problem(create(plan="web", risk="extreme"), 422)
    assert invalid["errors"][0]["field"] == "risk"
    text = assert_problem(api.post("/api/v1/changes", operator, json={"plan": "web"}), 422)
    assert text["errors"][0]["field"] == "title"
    assert ok(api.get("/api/v1/changes", operator)) == []  # none was made
    assert_no_secrets(api)


def test_without_a_plan_folder_no_change_can_be_created(serve: Callable[..., Api]) -> None:
    api = serve()
    refused = assert_problem(
        api.post("/api/v1/changes", api.token("operator"), json={"plan": "web", "title": "t"}),
        404,
    )
    assert "--plans" in refused["hint"]


# --- approve, reject ------------------------------------------------------------------------
def test_approving_ones_own_change_is_refused_with_the_reason(served: Callable[..., Api]) -> None:
    api = served()
    change_id = new_change(api, actor="alice")
    mine = api.token("approver", "alice")  # the requester, now holding an approver's token
    refused = assert_problem(
        api.post(f"/api/v1/changes/{change_id}/approve", mine, json={"comment": "lgtm"}), 403
    )
    assert refused["type"] == "urn:backout:problem:forbidden"
    assert "alice requested change" in refused["detail"]
    assert "cannot decide on it" in refused["detail"]
    assert refused["hint"]
    assert_problem(api.post(f"/api/v1/changes/{change_id}/reject", mine, json={}), 403)
    boss = api.token("admin", "boss")  # every permission still does not make it one's own
    own = new_change(api, actor="boss")
    assert_problem(api.post(f"/api/v1/changes/{own}/approve", boss, json={}), 403)
    assert change(api, change_id)["approvals"] == []
    assert change(api, change_id)["status"] == "planned"
    assert_no_secrets(api)


def test_approving_and_rejecting_move_the_change(served: Callable[..., Api]) -> None:
    api = served()
    approver = api.token("approver", "carol")
    kept = new_change(api)
    approved = ok(
        api.post(f"/api/v1/changes/{kept}/approve", approver, json={"comment": "ship it"}),
    )
    assert approved["status"] == "approved"
    assert approved["approvals"][0]["comment"] == "ship it"
    dropped = new_change(api)
    rejected = ok(api.post(f"/api/v1/changes/{dropped}/reject", approver, json={}))
    assert rejected["status"] == "rejected"
    again = assert_problem(api.post(f"/api/v1/changes/{dropped}/approve", approver, json={}), 409)
    assert "rejected" in again["detail"]
    assert_problem(api.post("/api/v1/changes/999/approve", approver, json={}), 404)
    long = {"comment": "x" * 2001}
    assert_problem(api.post(f"/api/v1/changes/{kept}/approve", approver, json=long), 422)
    assert_no_secrets(api)


# --- gate, start, close ---------------------------------------------------------------------
def test_the_gate_says_which_checks_fail_and_start_obeys_it(served: Callable[..., Api]) -> None:
    api = served()
    viewer, operator = api.token("viewer"), api.token("operator")
    change_id = approved_change(api, risk="high")  # high: the policy wants verify checks

    gate = ok(api.get(f"/api/v1/changes/{change_id}/gate", viewer))
    assert (gate["change_id"], gate["passed"]) == (change_id, False)
    assert gate["policy"].endswith("backout-policy.yaml")  # BACKOUT_POLICY, as the CLI reads it
    failing = [c["name"] for c in gate["checks"] if not c["passed"]]
    assert failing == ["verify"]

    refused = assert_problem(api.post(f"/api/v1/changes/{change_id}/start", operator, json={}), 409)
    assert "verify" in refused["detail"]
    assert change(api, change_id)["status"] == "approved"

    body = {"note": "outage", "override": "the database is on fire"}
    started = ok(api.post(f"/api/v1/changes/{change_id}/start", operator, json=body))
    assert started["status"] == "in_progress"
    [record] = [
        r
        for r in api.audited("change.transitioned")
        if r.subject == f"change:{change_id}" and r.details["to"] == "in_progress"
    ]
    assert record.details["override"] == "the database is on fire"
    assert record.details["overridden"] == ["verify"]

    passing = approved_change(api)
    assert ok(api.get(f"/api/v1/changes/{passing}/gate", viewer))["passed"] is True
    assert_problem(api.get("/api/v1/changes/999/gate", viewer), 404)
    assert_no_secrets(api)


def test_a_change_starts_only_once_approved_and_closes_once(served: Callable[..., Api]) -> None:
    api = served()
    operator = api.token("operator")
    planned = new_change(api)
    early = assert_problem(api.post(f"/api/v1/changes/{planned}/start", operator, json={}), 409)
    assert "planned" in early["detail"]
    assert_problem(api.post("/api/v1/changes/999/start", operator, json={}), 404)

    change_id = started_change(api)
    closed = api.post(
        f"/api/v1/changes/{change_id}/close",
        operator,
        json={"outcome": "completed", "note": "all good"},
    )
    assert ok(closed)["status"] == "completed"
    twice = assert_problem(
        api.post(f"/api/v1/changes/{change_id}/close", operator, json={"outcome": "failed"}), 409
    )
    assert "completed" in twice["detail"]
    failed = started_change(api)
    body = {"outcome": "failed"}
    assert ok(api.post(f"/api/v1/changes/{failed}/close", operator, json=body))["status"] == (
        "failed"
    )
    wrong = assert_problem(
        api.post(f"/api/v1/changes/{failed}/close", operator, json={"outcome": "done"}), 422
    )
    assert wrong["errors"][0]["field"] == "outcome"
    assert_no_secrets(api)


# --- rehearsals -----------------------------------------------------------------------------
def test_a_drill_runs_within_the_request_and_is_listed(served: Callable[..., Api]) -> None:
    api = served()
    operator, viewer = api.token("operator", "olga"), api.token("viewer")
    assert ok(api.get("/api/v1/rehearsals", viewer)) == []

    drill = ok(api.post("/api/v1/rehearsals", operator, json={"plan": "web", "trigger": "manual"}))
    assert (drill["passed"], drill["plan"], drill["run"]["status"]) == (True, "web", "succeeded")
    assert drill["run"]["trigger"]["trigger_kind"] == "manual"
    assert drill["rehearsal_id"] is not None

    [listed] = ok(api.get("/api/v1/rehearsals", viewer))
    assert (listed["id"], listed["outcome"], listed["actor"]) == (
        drill["rehearsal_id"],
        "succeeded",
        "olga",
    )
    assert listed["run_id"] == drill["run"]["run_id"]
    assert api.get("/api/v1/rehearsals", viewer, params={"plan": "other"}).json() == []
    assert_problem(api.get("/api/v1/rehearsals", viewer, params={"limit": 0}), 422)
    journal = api.get(f"/api/v1/runs/{drill['run']['run_id']}/journal", viewer)
    assert journal.status_code == 200
    assert_no_secrets(api)  # the step's argv held the secret: redacted in the journal


def test_a_drill_is_refused_what_it_cannot_do(served: Callable[..., Api]) -> None:
    api = served()
    operator = api.token("operator")

    def rehearse(**body: Any) -> Any:
        return api.post("/api/v1/rehearsals", operator, json=body)

    assert_problem(rehearse(plan="nope"), 404)
    assert_problem(rehearse(plan="broken"), 422)
    auto = assert_problem(rehearse(plan="web"), 400)  # no rehearsal section to break with
    assert "--trigger manual" in auto["hint"]
    killed = assert_problem(rehearse(plan="web", trigger="manual", faults=["kill"]), 400)
    assert "step" in killed["detail"]  # drilled (test_server_drills.py), given its step
    assert_problem(rehearse(plan="web", trigger="manual", faults=["slow:step"]), 400)
    assert_problem(rehearse(plan="web", trigger="manual", faults=["no-such-fault"]), 400)
    assert_problem(rehearse(plan="web", trigger="sometimes"), 422)
    assert api.get("/api/v1/rehearsals", operator).json() == []
    assert ok(api.get("/api/v1/runs", operator))["runs"] == []  # nothing ran
    assert_no_secrets(api)


def test_drills_due_lists_every_plan_of_the_folder(served: Callable[..., Api]) -> None:
    api = served()
    viewer = api.token("viewer")
    due = ok(api.get("/api/v1/rehearsals/due", viewer))
    [web] = due["drills"]
    assert (web["plan"], web["risk"], web["required"], web["due"]) == ("web", "low", False, False)
    [broken] = due["invalid"]
    assert broken["name"] == "broken"
    assert broken["issues"][0]["line"] == 3
    assert broken["issues"][0]["file"].endswith("broken.yaml")

    only = ok(api.get("/api/v1/rehearsals/due", viewer, params={"plan": "web"}))
    assert ([d["plan"] for d in only["drills"]], only["invalid"]) == (["web"], [])
    assert_problem(api.get("/api/v1/rehearsals/due", viewer, params={"plan": "nope"}), 404)
    assert_no_secrets(api)


def test_drills_due_follows_the_policy_for_the_plans_risk(
    served: Callable[..., Api], tmp_path: Path
) -> None:
    api = served()
    (tmp_path / "backout-policy.yaml").write_text(
        "low: {rehearsal: {max_age: 24h}}\nmedium: {}\nhigh: {}\ncritical: {}\n"
    )
    viewer = api.token("viewer")
    [web] = ok(api.get("/api/v1/rehearsals/due", viewer, params={"plan": "web"}))["drills"]
    assert (web["required"], web["due"]) == (True, True)
    drilled = api.post(
        "/api/v1/rehearsals", api.token("operator"), json={"plan": "web", "trigger": "manual"}
    )
    assert ok(drilled)["passed"] is True
    [after] = api.get("/api/v1/rehearsals/due", viewer, params={"plan": "web"}).json()["drills"]
    assert (after["required"], after["due"]) == (True, False)
    assert_no_secrets(api)


# --- who may do what ------------------------------------------------------------------------
@dataclass(frozen=True)
class Mutation:
    """A request that changes something: the roles allowed it, its status when allowed, and
    how to make the request (a fresh change in the state it needs) for one role."""

    allowed: frozenset[str]
    status: int
    prepare: Callable[[Api], tuple[str, dict[str, Any]]]


MUTATIONS = {
    "create": Mutation(OPERATORS, 201, lambda api: ("/changes", {"plan": "web", "title": "t"})),
    "approve": Mutation(
        APPROVERS, 200, lambda api: (f"/changes/{new_change(api)}/approve", {"comment": "ok"})
    ),
    "reject": Mutation(APPROVERS, 200, lambda api: (f"/changes/{new_change(api)}/reject", {})),
    "start": Mutation(
        OPERATORS, 200, lambda api: (f"/changes/{approved_change(api)}/start", {"note": "go"})
    ),
    "close": Mutation(
        OPERATORS,
        200,
        lambda api: (f"/changes/{started_change(api)}/close", {"outcome": "completed"}),
    ),
    "rehearse": Mutation(
        OPERATORS, 201, lambda api: ("/rehearsals", {"plan": "web", "trigger": "manual"})
    ),
}


def state(api: Api) -> tuple[Any, ...]:
    admin = api.token("admin", "auditor")
    return tuple(api.get(f"/api/v1/{what}", admin).json() for what in ("changes", "rehearsals"))


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_role_may_do_what_its_role_allows_and_no_more(
    served: Callable[..., Api], name: str
) -> None:
    api = served()
    mutation = MUTATIONS[name]
    for role in ROLES:
        path, body = mutation.prepare(api)
        before = state(api)
        denied = len(api.audited(DENIED))
        response = api.post("/api/v1" + path, api.token(role, f"{role}-{name}"), json=body)
        if role in mutation.allowed:
            assert response.status_code == mutation.status, (role, response.text)
            assert state(api) != before, role
            continue
        refused = assert_problem(response, 403)
        assert f"role {role}" in refused["detail"]
        assert " or ".join(r for r in ROLES if r in mutation.allowed) in refused["detail"]
        assert state(api) == before, role
        assert len(api.audited(DENIED)) == denied + 1
    assert_no_secrets(api)


def test_open_access_reads_but_changes_nothing(served: Callable[..., Api]) -> None:
    api = served(open_access=True)
    assert ok(api.get("/api/v1/changes")) == []
    assert ok(api.get("/api/v1/rehearsals")) == []
    refused = assert_problem(api.post("/api/v1/changes", json={"plan": "web", "title": "t"}), 403)
    assert "anonymous" in refused["detail"]
    api.token("viewer")
    assert_no_secrets(api)
