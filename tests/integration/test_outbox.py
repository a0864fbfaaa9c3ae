"""The ITSM outbox on SQLite and PostgreSQL, against a real local HTTP receiver that plays
ServiceNow (or Jira), fails the first deliveries and checks every payload's shape: each event
arrives exactly once, in order per change, and nothing is lost while the endpoint is down."""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from backout import commands
from backout.channels import Route
from backout.cli import cli
from backout.settings import Settings
from tests.callers import caller
from tests.http_server import http_server
from tests.integration.change_helpers import (
    PLAN,
    audit_records,
    create_change,
    invoke,
    outbox_rows,
    write,
)

SN_CREATE = "/api/now/table/change_request"
SN_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@dataclass
class Delivery:
    method: str
    path: str
    key: str
    body: dict[str, Any]
    record: str  # the remote record the request is about (sys_id or issue key)


@dataclass
class Receiver:
    """What the fake ITSM tool saw. ``fail_first`` deliveries get a 503, whatever they are."""

    kind: str  # "servicenow" or "jira"
    fail_first: int = 3
    name_records: bool = True  # False: acknowledge a create without saying which record
    requests: int = 0
    failed: int = 0
    accepted: list[Delivery] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why a payload was refused (400)
    records: dict[str, str] = field(default_factory=dict)  # remote id -> correlation
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests += 1
            self.headers.append(headers)
            if self.failed < self.fail_first:
                self.failed += 1
                return 503, {"error": {"message": "maintenance"}}
            key = headers.get("idempotency-key", "")
            if not key.startswith("backout-outbox-"):
                return self._refuse("no Idempotency-Key header")
            route = self.servicenow if self.kind == "servicenow" else self.jira
            return route(method, path, key, body)

    def _refuse(self, why: str) -> tuple[int, Any]:
        self.rejected.append(why)
        return 400, {"error": {"message": why}}

    def servicenow(self, method: str, path: str, key: str, body: Any) -> tuple[int, Any]:
        if method == "POST" and path == SN_CREATE:
            for name in ("short_description", "backout_plan", "correlation_id"):
                if not isinstance(body.get(name), str) or not body[name]:
                    return self._refuse(f"create: {name} missing")
            if not body["correlation_id"].startswith("backout-change-"):
                return self._refuse("create: bad correlation_id")
            if body.get("risk") not in ("1", "2", "3", "4"):
                return self._refuse("create: risk is not a ServiceNow choice")
            for name in ("start_date", "end_date"):
                if name in body and not SN_TIME.match(body[name]):
                    return self._refuse(f"create: {name} is not YYYY-MM-DD HH:MM:SS")
            sys_id = uuid.uuid4().hex
            self.records[sys_id] = body["correlation_id"]
            number = f"CHG{len(self.records):07d}"
            self.accepted.append(Delivery(method, path, key, body, sys_id))
            if not self.name_records:
                return 201, {"result": {}}
            return 201, {"result": {"sys_id": sys_id, "number": number}}
        match = re.fullmatch(SN_CREATE + r"/(\w+)", path)
        if method == "PATCH" and match:
            sys_id = match.group(1)
            if sys_id not in self.records:
                return 404, {"error": {"message": "No Record found"}}
            if not isinstance(body.get("work_notes"), str) or not body["work_notes"]:
                return self._refuse("patch: work_notes missing")
            if "state" in body and not re.fullmatch(r"-?\d+", body["state"]):
                return self._refuse("patch: state is not a choice value")
            self.accepted.append(Delivery(method, path, key, body, sys_id))
            return 200, {"result": {"sys_id": sys_id}}
        return 404, {"error": {"message": f"no route {method} {path}"}}

    def jira(self, method: str, path: str, key: str, body: Any) -> tuple[int, Any]:
        if method == "POST" and path == "/rest/api/2/issue":
            fields = body.get("fields", {})
            if fields.get("project", {}).get("key") != "OPS":
                return self._refuse("issue: fields.project.key must be OPS")
            if not fields.get("summary") or not fields.get("description"):
                return self._refuse("issue: summary and description are required")
            if not fields.get("issuetype", {}).get("name"):
                return self._refuse("issue: fields.issuetype.name is required")
            issue = f"OPS-{len(self.records) + 1}"
            self.records[issue] = fields["summary"]
            self.accepted.append(Delivery(method, path, key, body, issue))
            return 201, {"id": str(10000 + len(self.records)), "key": issue, "self": path}
        match = re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)/comment", path)
        if method == "POST" and match:
            if match.group(1) not in self.records:
                return 404, {"errorMessages": ["Issue does not exist"]}
            if not isinstance(body.get("body"), str) or not body["body"]:
                return self._refuse("comment: body missing")
            self.accepted.append(Delivery(method, path, key, body, match.group(1)))
            return 201, {"id": "1", "body": body["body"]}
        return 404, {"errorMessages": [f"no route {method} {path}"]}


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not isinstance(body, dict) or headers.get("content-type") != "application/json":
                code, reply = 400, {"error": {"message": "expected a JSON object"}}
            else:
                code, reply = receiver.handle(self.command, self.path, headers, body)
            data = json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serving(receiver: Receiver, port: int = 0) -> AbstractContextManager[str]:
    return http_server(_handler(receiver), port)


def _send(url: str, target: str, *extra: str, env: dict[str, str] | None = None) -> Result:
    args = ["--db", url, "--actor", "sender", "outbox", "send", "--url", target]
    args += ["--retry-delay", "0.05", "--timeout", "20", *extra]
    return CliRunner(env=env).invoke(cli, args, obj={})


def _events(url: str, tmp_path: Path) -> dict[int, list[int]]:
    """Two changes with several events each; returns change id -> its outbox ids in order."""
    plan = write(tmp_path / "plan.yaml", PLAN)
    first = create_change(url, plan, "--risk", "low", "--window", "2026-12-01T22:00..23:30")
    second = create_change(url, plan, "--risk", "medium")
    assert (
        invoke(url, "change", "approve", str(first), "--comment", "ok", actor="bob").exit_code == 0
    )
    assert (
        invoke(url, "change", "reject", str(second), "--comment", "no", actor="carol").exit_code
        == 0
    )
    assert invoke(url, "change", "start", str(first), actor="bob").exit_code == 0
    assert invoke(url, "change", "complete", str(first), actor="bob").exit_code == 0
    order: dict[int, list[int]] = {}
    for row in outbox_rows(url):
        order.setdefault(row["change_id"], []).append(row["id"])
    assert {k: len(v) for k, v in order.items()} == {first: 5, second: 3}
    return order


def _arrivals(receiver: Receiver) -> list[int]:
    return [int(d.key.removeprefix("backout-outbox-")) for d in receiver.accepted]


def _assert_exactly_once_in_order(receiver: Receiver, order: dict[int, list[int]]) -> None:
    assert receiver.rejected == []
    arrivals = _arrivals(receiver)
    assert len(arrivals) == len(set(arrivals))  # no event twice
    assert sorted(arrivals) == sorted(i for ids in order.values() for i in ids)  # none lost
    for ids in order.values():
        assert [i for i in arrivals if i in ids] == ids  # in order per change
    # each change is one remote record: created first, every later event about that record
    by_id = {int(d.key.removeprefix("backout-outbox-")): d for d in receiver.accepted}
    for ids in order.values():
        records = {by_id[i].record for i in ids}
        assert len(records) == 1
        assert by_id[ids[0]].method == "POST"


def test_servicenow_gets_every_event_once_in_order(store_url: str, tmp_path: Path) -> None:
    order = _events(store_url, tmp_path)
    receiver = Receiver("servicenow")
    with serving(receiver) as target:
        result = _send(store_url, target, "--json", env={"BACKOUT_OUTBOX_TOKEN": "t0ken"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["sent"], report["failed_attempts"], report["pending"]) == (8, 3, 0)
    assert all("HTTP 503" in error for error in report["errors"])
    assert receiver.failed == 3
    assert receiver.requests == 11
    _assert_exactly_once_in_order(receiver, order)
    assert {h.get("authorization") for h in receiver.headers} == {"Bearer t0ken"}

    creates = [d for d in receiver.accepted if d.method == "POST"]
    first = next(d for d in creates if d.body["correlation_id"] == "backout-change-1")
    assert first.body["short_description"] == "Deploy web"
    assert "write marker" in first.body["backout_plan"]  # the rendered runbook
    assert (first.body["start_date"], first.body["end_date"]) == (
        "2026-12-01 22:00:00",
        "2026-12-01 23:30:00",
    )
    assert first.body["risk"] == "4"
    notes = [d.body for d in receiver.accepted if d.record == first.record and d.method == "PATCH"]
    assert notes[0]["work_notes"].startswith("[backout] approved by bob")
    assert "comment: ok" in notes[0]["work_notes"]
    assert [n.get("state") for n in notes] == [None, "-2", "-1", "0"]

    rows = outbox_rows(store_url)
    assert {row["status"] for row in rows} == {"sent"}
    assert sum(row["attempts"] for row in rows) == 11
    delivered = audit_records(store_url, "--action", "outbox.delivered")
    assert sorted(r["details"]["outbox_id"] for r in delivered) == sorted(_arrivals(receiver))

    # acknowledged events are never sent again
    again = Receiver("servicenow", fail_first=0)
    with serving(again) as target:
        result = _send(store_url, target)
    assert result.exit_code == 0
    assert "sent 0" in result.stdout
    assert again.requests == 0


def test_jira_issue_then_comments(store_url: str, tmp_path: Path) -> None:
    order = _events(store_url, tmp_path)
    receiver = Receiver("jira")
    with serving(receiver) as target:
        result = _send(store_url, target, "--format", "jira", "--project", "OPS")
    assert result.exit_code == 0, result.output
    _assert_exactly_once_in_order(receiver, order)
    issues = [d for d in receiver.accepted if d.method == "POST" and d.path.endswith("/issue")]
    assert sorted(d.record for d in issues) == ["OPS-1", "OPS-2"]
    fields = issues[0].body["fields"]
    assert fields["issuetype"] == {"name": "Change"}
    assert "backout" in fields["labels"]
    assert "write marker" in fields["description"]
    comments = [d.body["body"] for d in receiver.accepted if d.path.endswith("/comment")]
    assert len(comments) == 6
    assert all(c.startswith("[backout] ") for c in comments)


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def test_nothing_is_lost_while_the_endpoint_is_down(store_url: str, tmp_path: Path) -> None:
    order = _events(store_url, tmp_path)
    port = _dead_port()
    down = _send(store_url, f"http://127.0.0.1:{port}", "--timeout", "0.2")
    assert down.exit_code == 1
    assert "sent 0" in down.stdout
    assert "still pending 8" in down.stdout
    assert "ConnectError" in down.stderr
    rows = outbox_rows(store_url)
    assert {row["status"] for row in rows} == {"pending"}
    assert all(row["last_error"] for row in rows if row["attempts"])
    once = _send(store_url, f"http://127.0.0.1:{port}", "--once")
    assert once.exit_code == 1  # one pass, nothing due yet or nothing reachable: still pending

    receiver = Receiver("servicenow", fail_first=0)
    with serving(receiver, port) as target:
        up = _send(store_url, target)
    assert up.exit_code == 0, up.output
    assert "sent 8" in up.stdout
    assert "still pending 0" in up.stdout
    _assert_exactly_once_in_order(receiver, order)


def test_a_refused_payload_is_retried_not_dropped(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN)
    create_change(store_url, plan)
    receiver = Receiver("jira", fail_first=0)  # the wrong project: every create is a 400
    with serving(receiver) as target:
        result = _send(
            store_url, target, "--format", "jira", "--project", "NOPE", "--timeout", "0.3"
        )
    assert result.exit_code == 1
    assert "HTTP 400" in result.stderr
    assert receiver.rejected
    assert [row["status"] for row in outbox_rows(store_url)] == ["pending"]


def test_a_create_answered_without_a_record_is_reported(store_url: str, tmp_path: Path) -> None:
    _events(store_url, tmp_path)
    receiver = Receiver("servicenow", fail_first=0, name_records=False)
    with serving(receiver) as target:
        result = _send(store_url, target, "--timeout", "0.3")
    assert result.exit_code == 1  # the later events wait: there is no record to add them to
    assert "the answer named no record" in result.stderr
    assert len(receiver.accepted) == 2  # the two creates, nothing else
    created = [row for row in outbox_rows(store_url) if row["event"] == "created"]
    assert {row["status"] for row in created} == {"sent"}
    assert all("named no record" in row["last_error"] for row in created)


def test_two_senders_at_once_deliver_each_event_once(store_url: str, tmp_path: Path) -> None:
    order = _events(store_url, tmp_path)
    receiver = Receiver("servicenow", fail_first=0)
    results: list[int] = []
    with serving(receiver) as target:

        def sender() -> None:  # the command itself: click's runner is not thread-safe
            settings = Settings(database_url=store_url, actor="sender")
            sent = commands.outbox_send(
                caller(settings),
                Route.of("itsm", "servicenow", {"url": target}, retry_delay=0.05),
                10,
            )
            results.append(sent.pending)

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == [0, 0]  # nothing left pending
    _assert_exactly_once_in_order(receiver, order)
