"""The ITSM channels' common part, and their payloads in the documented shapes of the
ServiceNow Table API and the Jira REST API.

ServiceNow: the change is created as a ``change_request`` (``POST /api/now/table/
change_request``) with ``backout_plan`` holding the rendered runbook; every later event is a
``work_notes`` entry (``PATCH /api/now/table/change_request/{sys_id}``), with ``state`` on
transitions. Jira: an issue of type Change (``POST /rest/api/2/issue``); later events are
comments (``POST /rest/api/2/issue/{key}/comment``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Literal

from backout.channels.base import Channel, ChannelOptions, Delivery, Receipt
from backout.channels.http import HttpSender

Format = Literal["servicenow", "jira"]

# ServiceNow change_request.risk choice values
SN_RISK = {"critical": "1", "high": "2", "medium": "3", "low": "4"}
# ServiceNow change_request.state choice values (normal change model)
SN_STATE = {
    "planned": "-4",
    "approved": "-2",
    "in_progress": "-1",
    "completed": "0",
    "backed_out": "0",
    "failed": "0",
    "rejected": "4",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any]


def _sn_time(at: float) -> str:
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _note(payload: dict[str, Any]) -> str:
    if payload.get("body"):  # a report attached to the change: shown as it is
        return str(payload["body"])
    details = ", ".join(f"{k}: {v}" for k, v in payload["details"].items() if v not in ("", None))
    return f"[backout] {payload['event']} by {payload['actor']}" + (
        f" — {details}" if details else ""
    )


def servicenow(payload: dict[str, Any], external_id: str | None) -> Request:
    change = payload["change"]
    if payload["event"] == "created":
        body = {
            "short_description": change["title"],
            "type": "normal",
            "risk": SN_RISK[change["risk"]],
            "backout_plan": payload.get("runbook", ""),
            "description": f"Plan {change['plan']} (version {change['plan_version']}) "
            f"for service {change['service']}",
            "correlation_id": f"backout-change-{change['id']}",
            "correlation_display": "backout",
            "requested_by": change["requester"],
            "state": SN_STATE["planned"],
        }
        if change.get("window_start") is not None:
            # ServiceNow date-time fields take "YYYY-MM-DD HH:MM:SS" (UTC with the API)
            body["start_date"] = _sn_time(change["window_start"])
            body["end_date"] = _sn_time(change["window_end"])
        return Request("POST", "/api/now/table/change_request", body)
    body = {"work_notes": _note(payload)}
    if payload["event"] == "transitioned":
        body["state"] = SN_STATE[payload["details"]["to"]]
    return Request("PATCH", f"/api/now/table/change_request/{external_id}", body)


def jira(payload: dict[str, Any], external_id: str | None, project: str) -> Request:
    change = payload["change"]
    if payload["event"] == "created":
        fields = {
            "project": {"key": project},
            "summary": change["title"],
            "issuetype": {"name": "Change"},
            "labels": ["backout", f"risk-{change['risk']}"],
            "description": payload.get("runbook", ""),
        }
        return Request("POST", "/rest/api/2/issue", {"fields": fields})
    return Request("POST", f"/rest/api/2/issue/{external_id}/comment", {"body": _note(payload)})


def external_id_of(fmt: Format, response: dict[str, Any]) -> str | None:
    """The remote id from a create response (ServiceNow ``result.sys_id``, Jira ``key``)."""
    if fmt == "servicenow":
        result = response.get("result")
        return str(result["sys_id"]) if isinstance(result, dict) and "sys_id" in result else None
    return str(response["key"]) if "key" in response else None


def build(
    fmt: Format, payload: dict[str, Any], external_id: str | None, project: str = "CHG"
) -> Request:
    return (
        servicenow(payload, external_id)
        if fmt == "servicenow"
        else jira(payload, external_id, project)
    )


NO_RECORD = (
    "acknowledged, but the answer named no record (ServiceNow result.sys_id, Jira key): "
    "later events of this change wait"
)


class ItsmSender(HttpSender):
    def __init__(self, options: ChannelOptions, fmt: Format, project: str = "CHG") -> None:
        super().__init__(options)
        self.fmt = fmt
        self.project = project

    def deliver(self, delivery: Delivery) -> Receipt:
        request = build(self.fmt, delivery.payload, delivery.ref, self.project)
        receipt, answer = self.send_json(delivery, request.method, request.path, request.body)
        if not receipt.ok or delivery.event != "created":
            return receipt
        ref = external_id_of(self.fmt, answer)
        return replace(receipt, ref=ref, warning="" if ref else NO_RECORD)


class ItsmChannel(Channel):
    """An ITSM tool: a change event other than ``created`` needs the remote record."""

    def needs_ref(self, delivery: Delivery) -> bool:
        return delivery.event != "created"
