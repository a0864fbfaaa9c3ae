"""The plans of the server's plan folder over the API (``/api/v1/plans``), and the validator
for a plan's text: real HTTP to the app the CLI serves, on SQLite and PostgreSQL (the
fixtures of test_server_changes.py: the folder holds web.yaml and broken.yaml)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_server import Api, assert_no_secrets, assert_problem, serve
from tests.integration.test_server_changes import SECRET, WEB, ok, served

__all__ = ["serve", "served"]  # the fixtures, re-exported for pytest

VALIDATE = "/api/v1/plans/validate"
# valid, with lint warnings: no verify checks, rto or lead for its risk, a step's timeout
WARNED = """plan: shop
risk: high
steps:
  - name: switch back
    run: ["true"]
"""
# one error per kind of place: a key the plan has no field for, a step without a kind
INVALID = """plan: shop
colour: blue
steps:
  - name: switch back
    timeout: 5s
"""


def validate(api: Api, token: str, text: str, **extra: Any) -> httpx.Response:
    return api.post(VALIDATE, token, json={"text": text, **extra})


# --- the folder -----------------------------------------------------------------------------
def test_the_plans_are_listed_with_their_service_or_their_issues(
    served: Callable[..., Api], tmp_path: Path
) -> None:
    (tmp_path / "plans" / "notes.txt").write_text("not a plan")
    (tmp_path / "plans" / "backout-policy.yaml").write_text("low: {}\n")
    api = served()
    listed = ok(api.get("/api/v1/plans", api.token("viewer")))["plans"]
    assert [p["name"] for p in listed] == ["backout-policy", "broken", "web"]
    policy, broken, web = listed
    assert (policy["kind"], policy["valid"], policy["issues"]) == ("policy", True, [])
    assert (web["valid"], web["plan"], web["service"], web["risk"]) == (True, "web", "web", "low")
    assert len(web["version"]) == 16
    assert broken["valid"] is False
    [issue] = [i for i in broken["issues"] if i["severity"] == "error"]
    assert (issue["line"], issue["field"]) == (3, "steps[0]")
    assert issue["message"]
    assert issue["hint"]
    assert_no_secrets(api)


def test_a_plan_is_shown_as_it_loads(served: Callable[..., Api], tmp_path: Path) -> None:
    api = served()
    viewer = api.token("viewer")
    shown = ok(api.get("/api/v1/plans/web", viewer))
    path = tmp_path / "plans" / "web.yaml"
    assert (shown["name"], shown["file"]) == ("web", str(path.resolve()))
    assert shown["plan"]["plan"] == "web"
    assert [s["name"] for s in shown["plan"]["steps"]] == ["switch back"]
    assert shown["plan"]["secrets"] == {"api_key": {"env": "BACKOUT_TEST_API_KEY", "file": None}}
    listed = {p["name"]: p for p in ok(api.get("/api/v1/plans", viewer))["plans"]}
    assert shown["version"] == listed["web"]["version"]
    assert len(shown["issues"]) == listed["web"]["warnings"]
    for issue in shown["issues"]:  # lint warnings, each with its place
        assert (issue["file"], issue["severity"]) == (str(path.resolve()), "warning")
    missing = assert_problem(api.get("/api/v1/plans/nope", viewer), 404)
    assert "broken, web" in missing["hint"]
    assert_problem(api.get("/api/v1/plans/..%2Fweb", viewer), 404)
    broken = assert_problem(api.get("/api/v1/plans/broken", viewer), 422)
    assert "broken.yaml:3" in broken["detail"]
    assert_no_secrets(api)


def test_a_plans_runbook_is_markdown(served: Callable[..., Api]) -> None:
    api = served()
    viewer = api.token("viewer")
    runbook = api.get("/api/v1/plans/web/runbook", viewer)
    assert runbook.status_code == 200
    assert runbook.headers["content-type"] == "text/markdown; charset=utf-8"
    assert runbook.text.startswith("# Backout runbook: web\n")
    assert "switch back" in runbook.text
    assert_problem(api.get("/api/v1/plans/nope/runbook", viewer), 404)
    assert_problem(api.get("/api/v1/plans/broken/runbook", viewer), 422)
    assert_no_secrets(api)


def test_a_dry_run_renders_the_steps_with_the_secret_redacted(
    served: Callable[..., Api],
) -> None:
    api = served()
    viewer = api.token("viewer")
    dry = ok(api.get("/api/v1/plans/web/dry-run", viewer))
    assert (dry["plan"], dry["service"]) == ("web", "web")
    [step] = dry["steps"]
    assert step["name"] == "switch back"
    rendered = json.dumps(step)
    assert SECRET not in rendered
    assert step["rendered"] == ["true", "***"]
    assert ok(api.get("/api/v1/runs", viewer))["runs"] == []  # nothing ran
    assert_problem(api.get("/api/v1/plans/web/dry-run", viewer, params={"environment": "x"}), 400)
    assert_no_secrets(api)


def test_without_a_plan_folder_there_are_no_plans(serve: Callable[..., Api]) -> None:
    api = serve()
    viewer = api.token("viewer")
    assert ok(api.get("/api/v1/plans", viewer)) == {"plans": []}
    refused = assert_problem(api.get("/api/v1/plans/web", viewer), 404)
    assert "--plans" in refused["hint"]


# --- validate -------------------------------------------------------------------------------
def test_a_valid_plan_is_valid_with_its_warnings(served: Callable[..., Api]) -> None:
    api = served()
    answer = ok(validate(api, api.token("viewer"), WEB, name="web.yaml"))
    assert (answer["valid"], answer["name"]) == (True, "web.yaml")
    assert all(i["severity"] == "warning" for i in answer["issues"])
    assert all(i["file"] == "web.yaml" for i in answer["issues"])
    assert_no_secrets(api)


def test_an_invalid_plan_is_a_problem_listing_every_issue(served: Callable[..., Api]) -> None:
    api = served()
    response = validate(api, api.token("viewer"), INVALID, name="shop.yaml")
    problem = assert_problem(response, 422)
    assert problem["type"] == "urn:backout:problem:plan"
    assert problem["hint"]
    issues = problem["issues"]
    assert {(i["line"], i["field"]) for i in issues if i["severity"] == "error"} >= {
        (2, "colour"),
        (4, "steps[0]"),
    }
    for issue in issues:
        assert issue["file"] == "shop.yaml"
        assert set(issue) == {"file", "line", "col", "field", "message", "hint", "severity"}
        assert issue["message"]
    assert "shop.yaml" in problem["detail"]
    assert "backout-validate-" not in response.text  # the temporary file is never named
    assert "/tmp" not in response.text
    assert_no_secrets(api)


def test_validation_runs_nothing(served: Callable[..., Api], tmp_path: Path) -> None:
    api = served()
    marker = tmp_path / "ran"
    plan = f"""plan: trap
steps:
  - name: touch
    run: [touch, "{marker}"]
    timeout: 5s
verify:
  - name: touched
    file_hash: {{path: "{marker}", equals: "abc"}}
"""
    assert ok(validate(api, api.token("viewer"), plan))["valid"] is True
    assert not marker.exists()
    assert ok(api.get("/api/v1/runs", api.token("viewer")))["runs"] == []


def test_validation_reports_yaml_and_size_errors_at_their_place(
    served: Callable[..., Api],
) -> None:
    api = served()
    viewer = api.token("viewer")
    bad_yaml = assert_problem(validate(api, viewer, "plan: shop\nsteps: [\n"), 422)
    [issue] = bad_yaml["issues"]
    assert issue["file"] == "plan.yaml"
    assert issue["line"] >= 2
    control = assert_problem(validate(api, viewer, "plan: shop\x07\n"), 422)
    assert "U+0007" in control["issues"][0]["message"]
    lone = b'{"text": "plan: \\ud800\\n"}'  # a surrogate no UTF-8 file can hold
    headers = {"content-type": "application/json"}
    surrogate = assert_problem(api.post(VALIDATE, viewer, content=lone, headers=headers), 422)
    assert surrogate["errors"][0]["field"] == "text"
    large = assert_problem(validate(api, viewer, "# " + "x" * 300_000), 422)
    assert "larger than" in large["issues"][0]["message"]
    warned = ok(validate(api, viewer, WARNED))
    assert warned["valid"] is True
    assert {(i["line"], i["severity"]) for i in warned["issues"]} == {
        (2, "warning"),
        (4, "warning"),
    }
    strict = assert_problem(validate(api, viewer, WARNED, strict=True), 422)
    assert [(i["line"], i["field"]) for i in strict["issues"]] == [
        (i["line"], i["field"]) for i in warned["issues"]
    ]
    assert {i["severity"] for i in strict["issues"]} == {"error"}
    assert_no_secrets(api)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": "plan: x", "name": "../../etc/passwd"}, "name"),
        ({"text": "plan: x", "name": ""}, "name"),
        ({"text": "plan: x", "strict": "very"}, "strict"),
    ],
)
def test_a_validation_request_it_cannot_read_is_refused(
    served: Callable[..., Api], body: dict[str, Any], field: str
) -> None:
    api = served()
    problem = assert_problem(api.post(VALIDATE, api.token("viewer"), json=body), 422)
    assert problem["type"] == "urn:backout:problem:invalid-request"
    assert problem["errors"][0]["field"] == field


def test_reading_plans_needs_a_token_and_any_role(served: Callable[..., Api]) -> None:
    api = served()
    paths = ["/api/v1/plans", "/api/v1/plans/web", "/api/v1/plans/web/runbook"]
    for path in paths:
        assert_problem(api.get(path), 401)
    assert_problem(api.post(VALIDATE, json={"text": WEB}), 401)
    for role in ("viewer", "operator", "approver", "admin"):
        token = api.token(role)
        for path in [*paths, "/api/v1/plans/web/dry-run"]:
            assert api.get(path, token).status_code == 200, (role, path)
        assert validate(api, token, WEB).status_code == 200
    assert_no_secrets(api)


def test_every_endpoint_is_described_in_openapi(served: Callable[..., Api]) -> None:
    api = served()
    spec = ok(api.get("/api/v1/openapi.json"))
    expected = {
        ("get", "/api/v1/changes", "changes"),
        ("post", "/api/v1/changes", "changes"),
        ("get", "/api/v1/changes/{change_id}", "changes"),
        ("post", "/api/v1/changes/{change_id}/approve", "changes"),
        ("post", "/api/v1/changes/{change_id}/reject", "changes"),
        ("get", "/api/v1/changes/{change_id}/gate", "changes"),
        ("post", "/api/v1/changes/{change_id}/start", "changes"),
        ("post", "/api/v1/changes/{change_id}/close", "changes"),
        ("get", "/api/v1/rehearsals", "rehearsals"),
        ("post", "/api/v1/rehearsals", "rehearsals"),
        ("get", "/api/v1/rehearsals/due", "rehearsals"),
        ("get", "/api/v1/plans", "plans"),
        ("get", "/api/v1/plans/{name}", "plans"),
        ("get", "/api/v1/plans/{name}/runbook", "plans"),
        ("get", "/api/v1/plans/{name}/dry-run", "plans"),
        ("post", "/api/v1/plans/validate", "plans"),
    }
    for method, path, tag in sorted(expected):
        operation = spec["paths"][path][method]
        assert operation["summary"], (method, path)
        assert operation["tags"] == [tag], (method, path)
    schemas = spec["components"]["schemas"]
    models = (
        "CreateChange",
        "ChangeDecision",
        "StartChange",
        "CloseChange",
        "Rehearse",
        "ValidatePlan",
    )
    for model in models:
        for name, field in schemas[model]["properties"].items():
            assert field.get("description"), (model, name)
    assert_no_secrets(api)
