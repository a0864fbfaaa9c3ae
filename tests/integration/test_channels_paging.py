"""The paging and notification channels (``pagerduty``, ``webhook``, ``email``) against
real local stand-ins for the services they talk to:

* a PagerDuty stand-in: a local HTTP server (tests/http_server.py) that validates every
  body against a JSON Schema written here from the documented Events API v2 shapes (alert
  events on ``/v2/enqueue``, change events on ``/v2/change/enqueue``) and answers as
  PagerDuty does (202, or 400 with ``errors``);
* a webhook receiver stand-in: a local HTTP server that keeps the raw body and headers,
  checked with the reference Standard Webhooks library (``standardwebhooks``) and with
  the channel's own ``verify``;
* an SMTP server stand-in: aiosmtpd's ``Controller`` on a free local port, plain, with
  AUTH (``auth_require_tls=False``), and with STARTTLS + AUTH on a self-signed certificate
  made by ``openssl`` in the test.

The channels get ``Delivery`` objects built here, as the outbox would hand them over.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from backout.channels.base import Delivery, Receipt
from backout.channels.email import Email
from backout.channels.notice import Notice
from backout.channels.pagerduty import MAX_WAIT_S, PagerDuty
from backout.channels.webhook import Webhook, verify
from tests.http_server import QuietHandler, http_server

ROUTING_KEY = "R0UT1NGK3Y0123456789abcdef012345"  # 32 characters, as PagerDuty's are
AT = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def make_notice(**changes: Any) -> Notice:
    values: dict[str, Any] = {
        "event": "trigger.fired",
        "title": "checkout@prod: error rate 7% > 5%, backing out",
        "text": "The trigger error-rate fired.\nBacking out to v41.",
        "severity": "critical",
        "run_id": "abc",
        "service": "checkout",
        "environment": "prod",
        "plan": "checkout-backout",
        "status": "running",
        "reason": "error rate 7% > 5% for 2m",
        "explain": "backout explain abc",
        "at": AT,
        "fields": [("Error rate", "7%"), ("Version", "v42")],
        "links": {"Runbook": "https://runbooks.example.com/checkout"},
    }
    values.update(changes)
    return Notice(**values)


def make_delivery(
    notice: Notice,
    key: str = "backout-notify-pd-run-abc-3",
    route: str = "notify:pd",
    ref: str | None = None,
) -> Delivery:
    return Delivery(
        id=1,
        key=key,
        route=route,
        stream=f"run:{notice.run_id}",
        event=notice.event,
        payload={"notice": notice.to_json()},
        ref=ref,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- PagerDuty -----------------------------------------------------------------------

TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$"
LINKS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["href"],
        "properties": {"href": {"type": "string", "minLength": 1}, "text": {"type": "string"}},
        "additionalProperties": False,
    },
}
# https://developer.pagerduty.com/docs/events-API-v2/02-Trigger-Events.md and the Events v2
# OpenAPI document (PagerDuty/api-schema reference/events-v2/openapiv3.json)
ALERT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "client": {"type": "string"},
        "client_url": {"type": "string"},
        "links": LINKS,
        "images": {"type": "array", "items": {"type": "object", "required": ["src"]}},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "pattern": TIMESTAMP},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
    # a trigger describes the problem; acknowledge and resolve name the alert
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload"]},
    "else": {"required": ["dedup_key"]},
}
# https://developer.pagerduty.com/docs/events-API-v2/03-Change-Events.md
CHANGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["routing_key", "payload"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "links": LINKS,
        "payload": {
            "type": "object",
            "required": ["summary"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string"},
                "timestamp": {"type": "string", "pattern": TIMESTAMP},
                "custom_details": {"type": "object"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
SCHEMAS = {
    "/v2/enqueue": Draft202012Validator(ALERT_SCHEMA),
    "/v2/change/enqueue": Draft202012Validator(CHANGE_SCHEMA),
}


@dataclass
class PagerDutyStandIn:
    """Validates each event as PagerDuty would and keeps the valid ones. ``answers`` are
    canned (status, headers) replies given first, one per request; ``key_length`` checks
    the routing key as PagerDuty does; ``echo_key`` puts the received key in its error
    (PagerDuty does not; a proxy in front of it might)."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    key_length: int | None = 32
    echo_key: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, path: str, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            if self.answers:
                status, headers = self.answers.pop(0)
                return status, {"status": "throttled", "message": "slow down"}, headers
            validator = SCHEMAS.get(path)
            if validator is None:
                return 404, {"status": "not found", "message": path}, {}
            try:
                body = json.loads(raw)
            except ValueError:
                return 400, invalid(["JSON parse error"]), {}
            errors = [
                f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(body)
            ]
            key = body.get("routing_key", "") if isinstance(body, dict) else ""
            if not errors and self.key_length and len(key) != self.key_length:
                errors = [
                    f"Length of 'routing_key' is incorrect (should be {self.key_length} characters)"
                ]
                if self.echo_key:
                    errors.append(f"routing_key {key} is unknown")
            if errors:
                return 400, invalid(errors), {}
            self.events.append((path, body))
            if path == "/v2/change/enqueue":
                return 202, {"status": "success", "message": "Change event processed"}, {}
            dedup_key = body.get("dedup_key") or uuid.uuid4().hex
            return (
                202,
                {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
                {},
            )


def invalid(errors: list[str]) -> dict[str, Any]:
    return {"status": "invalid event", "message": "Event object is invalid", "errors": errors}


Answer = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers
Handle = Callable[[str, bytes, dict[str, str]], Answer]


@contextmanager
def serving(handle: Handle) -> Iterator[str]:
    """A local HTTP server passing each POST's path, raw body and headers (names in
    lower case) to ``handle``."""

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received = {name.lower(): value for name, value in self.headers.items()}
            status, answer, headers = handle(self.path, raw, received)
            self.reply(status, json.dumps(answer).encode(), headers)

    with http_server(Handler) as url:
        yield url


@contextmanager
def pagerduty(stand_in: PagerDutyStandIn) -> Iterator[str]:
    with serving(lambda path, raw, headers: stand_in.handle(path, raw)) as url:
        yield url


def pd_options(url: str, **changes: Any) -> Any:
    return PagerDuty.Options(**{"routing_key": ROUTING_KEY, "url": url, **changes})


def send_pd(url: str, *notices: Notice, channel: PagerDuty | None = None) -> list[Receipt]:
    with (channel or PagerDuty()).open(pd_options(url)) as sender:
        return [sender.deliver(make_delivery(n)) for n in notices]


def test_the_stand_in_rejects_what_pagerduty_documents_as_invalid() -> None:
    """The schemas are not vacuous: bodies PagerDuty would refuse get a 400 here too."""
    trigger: dict[str, Any] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "abc",
    }
    payload: dict[str, Any] = {"summary": "s", "source": "checkout@prod", "severity": "critical"}
    bad: dict[str, list[dict[str, Any]]] = {
        "/v2/enqueue": [
            trigger,  # a trigger needs a payload
            {**trigger, "payload": {**payload, "severity": "high"}},
            {**trigger, "payload": {**payload, "summary": "x" * 1025}},
            {**trigger, "payload": {k: v for k, v in payload.items() if k != "source"}},
            {"routing_key": ROUTING_KEY, "event_action": "resolve"},  # resolve what?
            {**trigger, "event_action": "escalate", "payload": payload},
        ],
        "/v2/change/enqueue": [{"routing_key": ROUTING_KEY, "payload": {"source": "x"}}],
    }
    stand_in = PagerDutyStandIn()
    with pagerduty(stand_in) as url:
        for path, bodies in bad.items():
            for body in bodies:
                response = httpx.post(url + path, json=body)
                assert response.status_code == 400, body
                assert response.json()["errors"]
        assert (
            httpx.post(url + "/v2/enqueue", json={**trigger, "payload": payload}).status_code == 202
        )
    assert len(stand_in.events) == 1


def test_a_trigger_is_an_alert_event_in_the_documented_shape() -> None:
    stand_in = PagerDutyStandIn()
    with pagerduty(stand_in) as url:
        (receipt,) = send_pd(url, make_notice())
    assert receipt == Receipt(True, ref="abc")
    (path, body), *_ = stand_in.events
    assert path == "/v2/enqueue"
    assert body == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "abc",
        "client": "backout",
        "links": [{"href": "https://runbooks.example.com/checkout", "text": "Runbook"}],
        "payload": {
            "summary": "checkout@prod: error rate 7% > 5%, backing out",
            "source": "checkout@prod",
            "severity": "critical",
            "timestamp": "2023-11-14T22:13:20Z",
            "component": "checkout",
            "group": "prod",
            "class": "trigger.fired",
            "custom_details": {
                "text": "The trigger error-rate fired.\nBacking out to v41.",
                "fields": {"Error rate": "7%", "Version": "v42"},
                "reason": "error rate 7% > 5% for 2m",
                "explain": "backout explain abc",
                "plan": "checkout-backout",
                "status": "running",
                "run_id": "abc",
            },
        },
    }


def test_a_long_title_is_cut_to_the_documented_1024_characters() -> None:
    stand_in = PagerDutyStandIn()
    with pagerduty(stand_in) as url:
        (receipt,) = send_pd(url, make_notice(title="x" * 5000, severity="warning"))
    assert receipt.ok, receipt.error
    summary = stand_in.events[0][1]["payload"]["summary"]
    assert len(summary) == 1024
    assert summary.endswith("…")


def test_a_resolving_notice_resolves_and_an_acknowledgement_acknowledges_the_run_alert() -> None:
    stand_in = PagerDutyStandIn()
    with pagerduty(stand_in) as url:
        receipts = send_pd(
            url,
            make_notice(),
            make_notice(event="run.acknowledged", severity="info"),
            make_notice(event="run.backed_out", severity="info", status="backed_out"),
        )
    assert [r.ok for r in receipts] == [True, True, True]
    assert [r.ref for r in receipts] == ["abc", "abc", "abc"]
    actions = [(body["event_action"], body["dedup_key"]) for _, body in stand_in.events]
    assert actions == [("trigger", "abc"), ("acknowledge", "abc"), ("resolve", "abc")]
    assert stand_in.events[2][1] == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "abc",
    }


def test_a_deploy_start_is_a_change_event() -> None:
    stand_in = PagerDutyStandIn()
    start = make_notice(
        event="run.started", mode="deploy", severity="info", title="checkout@prod: deploying v42"
    )
    with pagerduty(stand_in) as url:
        (receipt,) = send_pd(url, start)
        (backout,) = send_pd(url, make_notice(event="run.started", mode="backout"))
    assert receipt.ok
    assert receipt.ref is None  # a change event opens no alert
    assert backout.ok
    (path, body), (other_path, _) = stand_in.events
    assert path == "/v2/change/enqueue"
    assert other_path == "/v2/enqueue"  # a backout that starts is an alert
    assert body == {
        "routing_key": ROUTING_KEY,
        "payload": {
            "summary": "checkout@prod: deploying v42",
            "source": "checkout@prod",
            "timestamp": "2023-11-14T22:13:20Z",
            "custom_details": {
                "text": "The trigger error-rate fired.\nBacking out to v41.",
                "fields": {"Error rate": "7%", "Version": "v42"},
                "reason": "error rate 7% > 5% for 2m",
                "explain": "backout explain abc",
                "plan": "checkout-backout",
                "status": "running",
                "run_id": "abc",
            },
        },
        "links": [{"href": "https://runbooks.example.com/checkout", "text": "Runbook"}],
    }


def test_throttling_keeps_retry_after() -> None:
    stand_in = PagerDutyStandIn(answers=[(429, {"Retry-After": "30"})])
    with pagerduty(stand_in) as url:
        throttled, accepted = send_pd(url, make_notice(), make_notice())
    assert not throttled.ok
    assert throttled.retry_after == 30.0
    assert "429" in throttled.error
    assert accepted.ok
    assert len(stand_in.events) == 1


def test_an_invalid_event_is_not_ok_with_pagerdutys_reason() -> None:
    stand_in = PagerDutyStandIn(key_length=40)  # the stand-in wants another key length
    with pagerduty(stand_in) as url:
        (receipt,) = send_pd(url, make_notice())
    assert not receipt.ok
    assert receipt.retry_after is None
    assert "HTTP 400" in receipt.error
    assert "Length of 'routing_key' is incorrect (should be 40 characters)" in receipt.error
    assert stand_in.events == []


def test_the_routing_key_never_appears_in_an_error() -> None:
    stand_in = PagerDutyStandIn(key_length=40, echo_key=True)
    with pagerduty(stand_in) as url:
        (echoed,) = send_pd(url, make_notice())
    with PagerDuty().open(pd_options(f"http://127.0.0.1:{free_port()}")) as sender:
        refused = sender.deliver(make_delivery(make_notice()))
    assert not echoed.ok
    assert not refused.ok
    assert "is unknown" in echoed.error  # the stand-in did echo it…
    for receipt in (echoed, refused):
        assert ROUTING_KEY not in receipt.error  # …and the receipt blanked it out
    assert "[routing key]" in echoed.error
    assert ROUTING_KEY not in repr(pd_options("https://events.pagerduty.com"))


@dataclass
class FakeClock:
    """A monotonic clock that moves only when told to, or when slept on."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_rate_limiter_holds_the_121st_event_of_a_minute() -> None:
    """A burst: 120 events go at once, the 121st would wait a whole minute, longer than a
    sender sleeps, so it is handed back with retry_after; a minute later it goes."""
    stand_in = PagerDutyStandIn()
    fake = FakeClock()
    with (
        pagerduty(stand_in) as url,
        PagerDuty(fake.clock, fake.sleep).open(pd_options(url)) as sender,
    ):
        receipts = [sender.deliver(make_delivery(make_notice())) for _ in range(120)]
        held = sender.deliver(make_delivery(make_notice()))
        assert len(stand_in.events) == 120  # the 121st never reached PagerDuty
        fake.now += 60
        sent = sender.deliver(make_delivery(make_notice()))
    assert all(r.ok for r in receipts)
    assert not held.ok
    assert held.retry_after == pytest.approx(60.0)
    assert "120 events a minute" in held.error
    assert sent.ok
    assert len(stand_in.events) == 121
    assert fake.slept == []


def test_the_rate_limiter_sleeps_a_short_wait() -> None:
    """Events spread over the minute: the 121st waits only until the first of the last
    60 seconds drops out, and the sender sleeps that (on the fake clock)."""
    stand_in = PagerDutyStandIn()
    fake = FakeClock()
    with (
        pagerduty(stand_in) as url,
        PagerDuty(fake.clock, fake.sleep).open(pd_options(url)) as sender,
    ):
        for _ in range(120):
            assert sender.deliver(make_delivery(make_notice())).ok
            fake.now += 0.4  # 120 events in 48 s
        assert fake.slept == []
        last = sender.deliver(make_delivery(make_notice()))
    assert last.ok
    assert fake.slept == [pytest.approx(12.0)]  # 1000 + 60 - 1048
    assert fake.slept[0] <= MAX_WAIT_S
    assert len(stand_in.events) == 121


def test_pagerduty_options_are_validated() -> None:
    with pytest.raises(ValidationError):
        PagerDuty.Options(routing_key="")
    with pytest.raises(ValidationError):
        PagerDuty.Options(routing_key=ROUTING_KEY, url="events.pagerduty.com")
    with pytest.raises(ValidationError):
        PagerDuty.Options.model_validate({"routing_key": ROUTING_KEY, "severity": "high"})
    defaults = PagerDuty.Options(routing_key="any non-empty key")
    assert (defaults.url, defaults.rate_per_minute) == ("https://events.pagerduty.com", 120)


# --- Standard Webhooks ---------------------------------------------------------------


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class Receiver:
    """A webhook receiver that keeps each request's raw body and headers, answering
    ``status`` (200 unless told)."""

    status: int = 200
    requests: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def handle(
        self, path: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.requests.append((raw, headers))
        return self.status, {"received": self.status < 300}, {}


def send_webhook(url: str, secrets: list[str], notice: Notice, **options: Any) -> Receipt:
    delivery = make_delivery(notice, key="backout-notify-hook-run-abc-3", route="notify:hook")
    with Webhook().open(Webhook.Options(url=url, secrets=secrets, **options)) as sender:
        return sender.deliver(delivery)


def test_a_webhook_verifies_with_the_reference_library_and_with_verify() -> None:
    secret, receiver = whsec(), Receiver()
    with serving(receiver.handle) as url:
        receipt = send_webhook(url + "/hooks", [secret], make_notice(), headers={"X-Team": "sre"})
    assert receipt.ok, receipt.error
    ((raw, headers),) = receiver.requests
    assert headers["webhook-id"] == "backout-notify-hook-run-abc-3"  # the delivery key
    assert headers["x-team"] == "sre"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-timestamp"].isdigit()
    assert headers["webhook-signature"].startswith("v1,")
    parsed = standardwebhooks.Webhook(secret).verify(raw, headers)
    assert parsed == {
        "type": "trigger.fired",
        "timestamp": "2023-11-14T22:13:20Z",
        "data": make_notice().to_json(),
    }
    verify(secret, headers, raw)  # no exception: authentic


def test_two_secrets_sign_twice_and_either_verifies() -> None:
    old, new, receiver = whsec(), whsec(), Receiver()
    with serving(receiver.handle) as url:
        assert send_webhook(url, [new, old], make_notice()).ok
    ((raw, headers),) = receiver.requests
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(raw, headers)
        verify(secret, headers, raw)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(whsec()).verify(raw, headers)


def test_verify_rejects_a_tampered_body_an_old_timestamp_and_a_wrong_secret() -> None:
    secret, receiver = whsec(), Receiver()
    with serving(receiver.handle) as url:
        assert send_webhook(url, [secret], make_notice()).ok
    ((raw, headers),) = receiver.requests
    sent_at = int(headers["webhook-timestamp"])
    verify(secret, headers, raw, now=sent_at + 299)
    tampered = raw.replace(b"critical", b"info")
    with pytest.raises(ValueError, match="no v1 signature matches"):
        verify(secret, headers, tampered)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(tampered, headers)
    with pytest.raises(ValueError, match="too old"):
        verify(secret, headers, raw, now=sent_at + 301)
    with pytest.raises(ValueError, match="future"):
        verify(secret, headers, raw, now=sent_at - 301)
    with pytest.raises(ValueError, match="no v1 signature matches"):
        verify(whsec(), headers, raw)
    with pytest.raises(ValueError, match="missing header"):
        verify(secret, {k: v for k, v in headers.items() if k != "webhook-id"}, raw)
    replayed = {**headers, "webhook-timestamp": str(sent_at + 1)}  # a new stamp, old signature
    with pytest.raises(ValueError, match="no v1 signature matches"):
        verify(secret, replayed, raw)


def test_a_raw_secret_is_used_as_its_utf8_bytes() -> None:
    receiver = Receiver()
    with serving(receiver.handle) as url:
        assert send_webhook(url, ["not-base64 secret!"], make_notice()).ok
    ((raw, headers),) = receiver.requests
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
    digest = hmac.new(b"not-base64 secret!", signed, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    verify("not-base64 secret!", headers, raw)


def test_a_failing_receiver_is_not_ok_and_no_secret_is_shown() -> None:
    secret, receiver = whsec(), Receiver(status=500)
    with serving(receiver.handle) as url:
        receipt = send_webhook(url, [secret], make_notice())
    assert not receipt.ok
    assert receipt.error.startswith("HTTP 500")
    assert secret not in receipt.error
    assert secret[6:] not in receipt.error
    refused = send_webhook(f"http://127.0.0.1:{free_port()}", [secret], make_notice())
    assert not refused.ok
    assert "ConnectError" in refused.error


def test_webhook_options_are_validated() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        Webhook.Options(url="https://hooks.example.com", secrets=[])
    with pytest.raises(ValidationError, match="base64"):
        Webhook.Options(url="https://hooks.example.com", secrets=["whsec_not base64!"])
    with pytest.raises(ValidationError, match="set by the webhook itself"):
        Webhook.Options(url="https://h.example.com", secrets=[whsec()], headers={"Webhook-Id": "x"})
    with pytest.raises(ValidationError, match="not an http"):
        Webhook.Options(url="hooks.example.com", secrets=[whsec()])
    secret = whsec()
    assert secret not in repr(Webhook.Options(url="https://h.example.com", secrets=[secret]))


# --- Email (SMTP) --------------------------------------------------------------------

USER, PASSWORD = "backout", "s3cret-Pa55word"


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps each message it accepts."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope, message))
        return "250 Message accepted for delivery"


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself


@contextmanager
def smtp_server(mailbox: Mailbox, **smtp: Any) -> Iterator[int]:
    """aiosmtpd on a free local port; yields the port."""
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **smtp)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def mail_options(port: int, **changes: Any) -> Any:
    values = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "sender": "backout@example.com",
        "to": ["oncall@example.com", "sre@example.com"],
        "timeout": 5,
    }
    return Email.Options(**{**values, **changes})


def send_mail(options: Any, notice: Notice, key: str, ref: str | None = None) -> Receipt:
    delivery = make_delivery(notice, key=key, route="notify:mail", ref=ref)
    with Email().open(options) as sender:
        return sender.deliver(delivery)


def parts(message: EmailMessage) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        found[part.get_content_type()] = part.get_content()
    return found


def test_a_notice_arrives_as_a_multipart_email_threaded_by_run() -> None:
    mailbox = Mailbox()
    title = "checkout@prod: <script>alert(1)</script> & more"
    with smtp_server(mailbox) as port:
        options = mail_options(port)
        first = send_mail(options, make_notice(title=title), "backout-notify-mail-run-abc-1")
        later = make_notice(event="run.backed_out", title="checkout@prod backed out")
        second = send_mail(options, later, "backout-notify-mail-run-abc-2", ref=first.ref)
    assert first.ok, first.error
    assert second.ok, second.error
    assert first.ref == second.ref == "<backout-notify-mail-run-abc-1@backout>"
    (envelope, message), (_, reply) = mailbox.messages
    assert envelope.mail_from == "backout@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "sre@example.com"]
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == f"[backout] {title}"
    assert message["Message-ID"] == "<backout-notify-mail-run-abc-1@backout>"
    assert message["In-Reply-To"] is None
    assert message["References"] is None
    assert message["Auto-Submitted"] == "auto-generated"
    body = parts(message)
    assert set(body) == {"text/plain", "text/html"}
    assert title in body["text/plain"]
    assert "Error rate: 7%" in body["text/plain"]
    assert "<script>" not in body["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in body["text/html"]
    assert '<a href="https://runbooks.example.com/checkout">Runbook</a>' in body["text/html"]
    assert reply["Message-ID"] == "<backout-notify-mail-run-abc-2@backout>"
    assert reply["In-Reply-To"] == reply["References"] == "<backout-notify-mail-run-abc-1@backout>"
    assert reply["Subject"] == "[backout] checkout@prod backed out"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_auth_logs_in_and_a_wrong_password_is_not_shown() -> None:
    """AUTH on a plain connection: the stand-in allows it (auth_require_tls=False)."""
    mailbox = Mailbox()
    with smtp_server(
        mailbox, authenticator=authenticator, auth_required=True, auth_require_tls=False
    ) as port:
        good = send_mail(mail_options(port, username=USER, password=PASSWORD), make_notice(), "k-1")
        bad = send_mail(
            mail_options(port, username=USER, password=PASSWORD + "x"), make_notice(), "k-2"
        )
        anonymous = send_mail(mail_options(port), make_notice(), "k-3")
    assert good.ok, good.error
    assert len(mailbox.messages) == 1
    assert not bad.ok
    assert "login as 'backout' refused" in bad.error
    assert "535" in bad.error
    assert PASSWORD not in bad.error
    assert not anonymous.ok  # the server requires AUTH: 530
    assert "530" in anonymous.error


@pytest.fixture
def self_signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A certificate for 127.0.0.1 made by openssl, trusted by the client through
    SSL_CERT_FILE; returns the server's TLS context."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_starttls_then_auth(self_signed: ssl.SSLContext) -> None:
    """STARTTLS on a self-signed certificate the client trusts, AUTH over it (aiosmtpd's
    default: no AUTH before TLS)."""
    mailbox = Mailbox()
    with smtp_server(
        mailbox,
        tls_context=self_signed,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    ) as port:
        options = mail_options(port, starttls=True, username=USER, password=PASSWORD)
        receipt = send_mail(options, make_notice(), "k-tls")
        plain = send_mail(mail_options(port), make_notice(), "k-plain")
    assert receipt.ok, receipt.error
    assert len(mailbox.messages) == 1
    assert not plain.ok  # the server requires STARTTLS first


def test_a_closed_port_is_not_ok() -> None:
    receipt = send_mail(mail_options(free_port()), make_notice(), "k-closed")
    assert not receipt.ok
    assert "ConnectionRefusedError" in receipt.error


def test_email_options_are_validated() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        mail_options(25, to=[])
    with pytest.raises(ValidationError, match="go together"):
        mail_options(25, username=USER)
    with pytest.raises(ValidationError, match="not an email address"):
        mail_options(25, sender="backout")
    assert PASSWORD not in repr(mail_options(25, username=USER, password=PASSWORD))


def test_the_three_are_notification_channels() -> None:
    assert (PagerDuty.kind, Webhook.kind, Email.kind) == ("pagerduty", "webhook", "email")
    assert [PagerDuty.notices, Webhook.notices, Email.notices] == [True, True, True]
