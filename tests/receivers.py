"""Stand-ins for the notification services (Slack, PagerDuty, a signed-webhook receiver),
on one real local HTTP server: they are not the SaaS endpoints, only receivers that
record what arrives, check its shape and its signature, and answer as the services do
(optionally failing first, as scripted by a test)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook as StandardWebhook

from tests.http_server import QuietHandler, http_server

WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtc3RhbmQtaW4tcmVjZWl2ZXI="  # base64 of a test key


@dataclass
class Received:
    channel: str  # slack | pagerduty | webhook
    key: str  # the delivery's idempotency key (header), "" if none
    body: dict[str, Any]
    at: float


@dataclass
class StandIns:
    """What the stand-ins saw. ``script``: answers to give first, per channel, e.g.
    ``{"webhook": [(500, {}), (429, {"Retry-After": "1"})]}``; then 2xx."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # shape or signature problems
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self, channel: str) -> list[str]:
        with self.lock:
            return [r.key for r in self.received if r.channel == channel]

    def of(self, channel: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.channel == channel]

    def wait_for(self, channel: str, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.of(channel)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{channel}: {len(self.of(channel))} of {count} arrived")
            time.sleep(0.02)
        return self.of(channel)


def _check(channel: str, headers: Any, raw: bytes, body: dict[str, Any]) -> str:
    """Why the stand-in refuses this request ("" when it is well formed)."""
    if channel == "webhook":
        try:
            StandardWebhook(WEBHOOK_SECRET).verify(raw, {k: v for k, v in headers.items()})
        except Exception as exc:
            return f"signature: {exc}"
        return ""
    if channel == "slack":
        if not isinstance(body.get("text"), str) or not isinstance(body.get("blocks"), list):
            return "slack: a message needs `text` and `blocks`"
        return ""
    if channel == "pagerduty":
        if body.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            return "pagerduty: bad event_action"
        if not body.get("routing_key") or not body.get("dedup_key"):
            return "pagerduty: routing_key and dedup_key are required"
        if body["event_action"] == "trigger":
            payload = body.get("payload") or {}
            if not all(payload.get(k) for k in ("summary", "source", "severity")):
                return "pagerduty: trigger needs payload.summary, source, severity"
    return ""


@contextmanager
def stand_ins() -> Iterator[StandIns]:
    state = StandIns()
    paths = {"/slack": "slack", "/pd/v2/enqueue": "pagerduty", "/hook": "webhook"}

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            declared = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(declared)
            if len(raw) < declared:  # the sender died mid-request: nothing arrived
                return
            channel = paths.get(self.path, "")
            body = json.loads(raw or b"{}")
            with state.lock:
                scripted = state.script.get(channel) or []
                answer = scripted.pop(0) if scripted else None
            if answer is not None:
                self._answer(answer[0], answer[1], b'{"status":"scripted"}')
                return
            problem = _check(channel, self.headers, raw, body) if channel else "unknown path"
            if problem:
                with state.lock:
                    state.refused.append(problem)
                self._answer(400, {}, json.dumps({"errors": [problem]}).encode())
                return
            key = self.headers.get("webhook-id") or self.headers.get("Idempotency-Key") or ""
            with state.lock:
                state.received.append(Received(channel, key, body, time.time()))
            if channel == "pagerduty":
                reply = {"status": "success", "dedup_key": body.get("dedup_key")}
                self._answer(202, {}, json.dumps(reply).encode())
            else:
                self._answer(200, {}, b"ok")

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.reply(status, body, headers, content_type=None)

    with http_server(Handler) as url:
        state.url = url
        yield state


def notify_section(url: str) -> str:
    """A plan's `notify:` section sending to the three stand-ins (YAML, indented for a plan)."""
    return f"""
notify:
  channels:
    chat:
      slack: {{webhook_url: "{url}/slack"}}
    pager:
      pagerduty: {{routing_key: "{{{{ secrets.pd_key }}}}", url: "{url}/pd"}}
    feed:
      webhook: {{url: "{url}/hook", secrets: ["{{{{ secrets.hook_secret }}}}"]}}
  routes:
    - events: ["*"]
      to: [feed, chat]
    - events: [run.started, run.backed_out, run.failed, run.needs_attention]
      to: [pager]
"""
