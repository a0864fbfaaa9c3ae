"""``pagerduty``: pages through the PagerDuty Events API v2.

One run is one PagerDuty alert: every event of a run carries ``dedup_key`` = the run id,
so a later event updates, acknowledges or resolves the alert the first one opened
(``POST {url}/v2/enqueue``):

* ``trigger`` for a notice that does not end anything (a fired trigger, a failed step…),
  with a ``payload`` of ``summary`` (the notice title, at most 1024 characters),
  ``source`` (``service@environment``), ``severity``, ``timestamp``, ``component``
  (the service), ``group`` (the environment), ``class`` (the notify event) and
  ``custom_details``; plus ``links`` and ``client: "backout"``;
* ``acknowledge`` for ``run.acknowledged``;
* ``resolve`` for a resolving notice (``run.backed_out``, ``run.healthy`` …).

A deploy that starts (``run.started`` in mode ``deploy``) is not a problem but a change:
it goes to the Change Events API (``POST {url}/v2/change/enqueue``), where PagerDuty shows
it on the service's recent changes next to any incident it may cause.

PagerDuty answers 202 ``{"status": "success", "dedup_key": …}``; the receipt's ``ref`` is
that ``dedup_key``. 400 is an invalid event (its ``errors`` are reported; it is
permanent, so the outbox dead-letters it at once); 429 is throttling (``Retry-After``
is kept). PagerDuty accepts about 120 events a minute per integration key, counted over
the last 60 seconds: a sender keeps to ``rate_per_minute`` by waiting before a request
that would exceed it. A wait longer than :data:`MAX_WAIT_S` is not slept (the delivery's
claim would expire and a second sender could send it too): the delivery is handed back
with ``retry_after`` instead.

The routing key is the secret here: it goes in the request body only, and is blanked out
of every error a receipt carries.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backout.channels.base import CLAIM_S, Channel, Delivery, Receipt, Sender
from backout.channels.http import retry_after
from backout.channels.notice import Notice

if TYPE_CHECKING:
    import httpx

SEVERITIES = ("critical", "error", "warning", "info")
SUMMARY_MAX = 1024  # characters, documented for alert and change events
WINDOW_S = 60.0
MAX_WAIT_S = CLAIM_S / 2
"""The longest the rate limiter sleeps in a delivery: well inside the claim a sender holds
on it. A longer wait is answered with a not-ok receipt carrying ``retry_after``."""


class PagerDutyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built when first used

    routing_key: str = Field(
        min_length=1,
        repr=False,
        description="The integration key of an Events API v2 integration on the service "
        "(32 characters in PagerDuty; keep it in the environment)",
    )
    url: str = Field(
        "https://events.pagerduty.com",
        description="The Events API base URL (https://events.eu.pagerduty.com for EU accounts)",
    )
    timeout: float = Field(10.0, gt=0, description="Seconds per request")
    rate_per_minute: int = Field(
        120,
        ge=1,
        description="At most this many events per 60 seconds from one sender "
        "(PagerDuty's limit per integration key is about 120)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url.rstrip("/")


class RateLimiter:
    """At most ``limit`` calls in any ``window`` seconds (a sliding window over the times
    of the calls made, as PagerDuty counts them). ``clock`` and ``sleep`` are injectable."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.calls: collections.deque[float] = collections.deque()

    def wait_time(self) -> float:
        """Seconds until one more call fits in the window (0: now)."""
        now = self.clock()
        while self.calls and self.calls[0] <= now - self.window:
            self.calls.popleft()
        if len(self.calls) < self.limit:
            return 0.0
        return self.calls[0] + self.window - now

    def acquire(self, max_wait: float) -> float:
        """Take a slot, sleeping up to ``max_wait`` seconds for one. Returns 0 when taken,
        else the seconds still to wait (nothing taken)."""
        while (wait := self.wait_time()) > 0:
            if wait > max_wait:
                return wait
            self.sleep(wait)
        self.calls.append(self.clock())
        return 0.0


def _summary(notice: Notice) -> str:
    summary = notice.title.strip() or f"{notice.event} on {notice.subject}"
    if notice.test:
        summary = f"[test] {summary}"
    summary = " ".join(summary.split())  # one line
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 1] + "…"
    return summary


def _details(notice: Notice) -> dict[str, Any]:
    details: dict[str, Any] = {
        "text": notice.text,
        "fields": dict(notice.fields),
        "reason": notice.reason,
        "explain": notice.explain,
        "plan": notice.plan,
        "status": notice.status,
        "run_id": notice.run_id,
    }
    return {k: v for k, v in details.items() if v not in ("", {}, None)}


def _links(notice: Notice) -> list[dict[str, str]]:
    return [{"href": url, "text": label} for label, url in notice.links.items()]


def event_action(notice: Notice) -> str:
    if notice.event == "run.acknowledged":
        return "acknowledge"
    return "resolve" if notice.resolving else "trigger"


def is_change(notice: Notice) -> bool:
    """A deploy that starts, or a report drafted after the fact: a change event (shown
    among the service's recent changes), not an alert: neither should page anyone."""
    return (notice.event == "run.started" and notice.mode == "deploy") or (
        notice.event == "run.report"
    )


def alert_event(notice: Notice, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for ``notice`` (``/v2/enqueue``)."""
    action = event_action(notice)
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": notice.run_id,
    }
    if action != "trigger":
        return body  # acknowledge and resolve name the alert, nothing more
    payload: dict[str, Any] = {
        "summary": _summary(notice),
        "source": notice.subject,
        "severity": notice.severity if notice.severity in SEVERITIES else "error",
        "component": notice.service,
        "class": notice.event,
        "custom_details": _details(notice),
    }
    if notice.at > 0:
        payload["timestamp"] = notice.timestamp
    if notice.environment:
        payload["group"] = notice.environment
    body["payload"] = payload
    body["client"] = "backout"
    if notice.links:
        body["links"] = _links(notice)
    return body


def change_event(notice: Notice, routing_key: str) -> dict[str, Any]:
    """The Change Events API body for ``notice`` (``/v2/change/enqueue``)."""
    payload: dict[str, Any] = {
        "summary": _summary(notice),
        "source": notice.subject,
        "custom_details": _details(notice),
    }
    if notice.at > 0:
        payload["timestamp"] = notice.timestamp
    body: dict[str, Any] = {"routing_key": routing_key, "payload": payload}
    if notice.links:
        body["links"] = _links(notice)
    return body


class PagerDutySender(Sender):
    def __init__(self, options: PagerDutyOptions, limiter: RateLimiter) -> None:
        import httpx

        self.options = options
        self.limiter = limiter
        self.client = httpx.Client(
            base_url=options.url,
            headers={"Accept": "application/json"},
            timeout=options.timeout,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self.options.routing_key, "[routing key]")

    def deliver(self, delivery: Delivery) -> Receipt:
        import httpx

        notice = Notice.of(delivery)
        if is_change(notice):
            path, body = "/v2/change/enqueue", change_event(notice, self.options.routing_key)
        else:
            path, body = "/v2/enqueue", alert_event(notice, self.options.routing_key)
        wait = self.limiter.acquire(MAX_WAIT_S)
        if wait > 0:
            error = f"held back: {self.options.rate_per_minute} events a minute already sent"
            return Receipt(False, error, retry_after=wait)
        try:
            # PagerDuty dedupes by dedup_key (one incident per run); the key names this
            # delivery for any proxy or receiver in between that drops repeats
            response = self.client.post(path, json=body, headers={"Idempotency-Key": delivery.key})
        except httpx.HTTPError as exc:
            return Receipt(False, self._redact(f"{type(exc).__name__}: {exc}"))
        try:
            answer = response.json()
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        if 200 <= response.status_code < 300:
            dedup_key = answer.get("dedup_key") or body.get("dedup_key")
            return Receipt(True, ref=str(dedup_key) if dedup_key else None)
        return Receipt(
            False,
            self._redact(_error(response, answer)),
            retry_after=retry_after(response),
            permanent=response.status_code == 400,  # an invalid event stays invalid
        )

    def close(self) -> None:
        self.client.close()


def _error(response: httpx.Response, answer: dict[str, Any]) -> str:
    code = response.status_code
    if code == 429:
        return "HTTP 429: throttled by PagerDuty"
    if answer:
        errors = answer.get("errors")
        reasons = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
        message = str(answer.get("message") or answer.get("status") or "")
        text = ": ".join(part for part in (message, reasons) if part)
    else:
        text = response.text[:200]
    kind = "invalid event" if code == 400 else "error"
    return f"HTTP {code} {kind}: {text}" if text else f"HTTP {code} {kind}"


class PagerDuty(Channel):
    """``clock`` and ``sleep`` drive the rate limiter (a test passes fakes)."""

    kind = "pagerduty"
    notices = True
    Options = PagerDutyOptions

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep

    def open(self, options: PagerDutyOptions) -> PagerDutySender:
        limiter = RateLimiter(options.rate_per_minute, WINDOW_S, self.clock, self.sleep)
        return PagerDutySender(options, limiter)
