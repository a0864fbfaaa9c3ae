"""Alerts over the API: Alertmanager's webhook (version 4) at ``/api/v1/alerts/alertmanager``
and a generic alert at ``/api/v1/alerts``, both for the operator role (they can back a
service out). Each is stored in the trigger inbox for its service's running deploy or
watch, which is rung to read it at once (:mod:`backout.commands.alerts`); the answer says
what was stored, for which run, and which alerts are copies of one that already acted.

Alertmanager authenticates with an API token as its bearer credential (``http_config:
authorization: credentials_file: …``): the token is all it needs. The body is read with
the listener's own model of the webhook (:class:`~backout.triggers.alerts.WebhookPayload`):
a body that is not one is a 422 problem naming the field.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from backout.commands.alerts import GenericAlert, deliver_alerts
from backout.commands.caller import Caller
from backout.kernel.roles import Permission
from backout.server.auth import Gate, needs
from backout.triggers.alerts import WebhookPayload

API = "/api/v1"


def alerts(gate: Gate) -> APIRouter:
    router = APIRouter(prefix=API, tags=["alerts"])
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]

    @router.post(
        "/alerts/alertmanager",
        summary="Alertmanager's webhook (v4): its alerts go to their services' running runs",
    )
    def alertmanager(
        caller: operator,
        body: WebhookPayload,
        service: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=200,
                description="The service of every alert (default: each alert's service label)",
            ),
        ] = None,
    ) -> dict[str, Any]:
        return deliver_alerts(caller, body, service, source="alertmanager").to_json()

    @router.post(
        "/alerts",
        summary="One alert from any sender, for a service's running deploy or watch",
    )
    def generic(caller: operator, body: GenericAlert) -> dict[str, Any]:
        return deliver_alerts(caller, body.webhook(caller.actor), source="api").to_json()

    return router
