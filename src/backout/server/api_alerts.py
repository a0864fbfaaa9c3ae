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
Environment = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        description="The environment of every alert (default: each alert's `environment` "
        "label): the alerts go to `SERVICE@ENVIRONMENT`, as a plan with `environments:` "
        "keys its runs",
    ),
]


def alerts(gate: Gate) -> APIRouter:
    router = APIRouter(prefix=API, tags=["alerts"])
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]

    @router.post(
        "/alerts/alertmanager",
        summary="Alertmanager's webhook (v4): its alerts go to their services' running runs",
        description="An alert is for the service of its `service` label (or `?service=`); "
        "with an `environment` label (or `?environment=`), for that environment's runs: "
        "`service@environment`, as a plan with `environments:` keys them.",
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
        environment: Environment = None,
    ) -> dict[str, Any]:
        delivery = deliver_alerts(caller, body, service, "alertmanager", environment)
        return delivery.to_json()

    @router.post(
        "/alerts",
        summary="One alert from any sender, for a service's running deploy or watch",
        description="With `environment` in its labels (or `?environment=`), the alert is "
        "for that environment's runs: `service@environment`.",
    )
    def generic(
        caller: operator, body: GenericAlert, environment: Environment = None
    ) -> dict[str, Any]:
        payload = body.webhook(caller.actor)
        return deliver_alerts(caller, payload, None, "api", environment).to_json()

    return router
