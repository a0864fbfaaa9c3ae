"""``backout notify receive``: a small HTTP receiver for PagerDuty's V3 webhooks, so an
acknowledgement in PagerDuty takes the run as ``backout ack`` would (notify/pagerduty_acks.py).

It serves ``POST /pagerduty`` with the webhook listener's framing (a deadline per request,
``Content-Length`` required and bounded, a connection limit) until stopped. A request
without a valid signature is answered 401 and recorded nowhere; a body that is not a V3
webhook 400; anything the store cannot take 503 (PagerDuty retries it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from backout.commands.caller import Caller
from backout.errors import BackoutError, UsageError
from backout.notify.pagerduty_acks import (
    SIGNATURE_HEADER,
    BadPayload,
    Taken,
    parse_event,
    signature_ok,
    take,
)
from backout.stop import STOP
from backout.store.db import Store
from backout.triggers.listener_address import signed_address
from backout.triggers.listener_http import REQUEST_DEADLINE_S, handler_for
from backout.triggers.listener_server import bind

SECRET_ENV = "BACKOUT_PAGERDUTY_WEBHOOK_SECRET"  # noqa: S105 (the variable's name)
PAGERDUTY_PATH = "/pagerduty"
_SECRET_HINT = (
    "give the secret PagerDuty showed when the webhook subscription was created: "
    f"--secret-file FILE (one secret a line; two while rotating) or {SECRET_ENV}"
)


def webhook_secrets(secret_file: str | None) -> list[str]:
    """The subscription secrets, from ``--secret-file`` or the environment; at least one."""
    if secret_file is not None:
        try:
            text = Path(secret_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"{secret_file}: cannot read the secret ({exc.strerror or exc})", hint=_SECRET_HINT
            ) from exc
    else:
        text = os.environ.get(SECRET_ENV, "").replace(",", "\n")
    secrets = [line.strip() for line in text.splitlines() if line.strip()]
    if not secrets:
        where = f"{secret_file} holds no secret" if secret_file else f"{SECRET_ENV} is not set"
        raise UsageError(
            f"refusing to receive PagerDuty webhooks unsigned: {where}", hint=_SECRET_HINT
        )
    return secrets


@dataclass
class ReceiveReport:
    """What the receiver did while it ran."""

    url: str = ""
    acknowledged: list[str] = field(default_factory=list)
    ignored: int = 0
    refused: int = 0


class PagerDutyReceiver:
    """The owner of ``POST /pagerduty`` requests (triggers/listener_http.Owner)."""

    path, what, credential = PAGERDUTY_PATH, "PagerDuty V3 webhooks", None

    def __init__(
        self,
        store: Store,
        secrets: list[str],
        on_taken: Callable[[Taken], None] | None = None,
        deadline: float = REQUEST_DEADLINE_S,
    ) -> None:
        self.store, self.secrets, self.deadline = store, secrets, deadline
        self.on_taken = on_taken
        self.report = ReceiveReport()
        self.lock = threading.Lock()

    def accept(self, body: bytes, headers: Message) -> tuple[int, str]:
        if not signature_ok(body, headers.get(SIGNATURE_HEADER), self.secrets):
            with self.lock:
                self.report.refused += 1
            return 401, f"the {SIGNATURE_HEADER} header does not sign this body"
        try:
            event = parse_event(body)
        except BadPayload as exc:
            with self.lock:
                self.report.refused += 1
            return 400, str(exc)
        try:
            with self.store.session() as session:
                taken = take(session, event)
        except (BackoutError, SQLAlchemyError) as exc:
            return 503, f"the store cannot take the acknowledgement now ({type(exc).__name__})"
        with self.lock:
            if taken.acknowledged and taken.run_id:
                self.report.acknowledged.append(taken.run_id)
            else:
                self.report.ignored += 1
        if self.on_taken is not None:
            self.on_taken(taken)
        return taken.status, taken.message

    def reject(self, reason: str, client: str) -> None:
        with self.lock:
            self.report.refused += 1


def receive_pagerduty(
    caller: Caller,
    listen: str,
    secrets: list[str],
    on_ready: Callable[[str], None] | None = None,
    on_taken: Callable[[Taken], None] | None = None,
) -> ReceiveReport:
    """Serve PagerDuty's webhooks at ``listen`` until stopped (SIGTERM, Ctrl-C)."""
    address = signed_address(listen)
    receiver = PagerDutyReceiver(caller.store, secrets, on_taken)
    server = bind(address, handler_for(receiver))
    host, port = server.server_address[:2]
    shown = f"[{host!s}]" if ":" in str(host) else str(host)
    receiver.report.url = f"http://{shown}:{port}{PAGERDUTY_PATH}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        if on_ready is not None:
            on_ready(receiver.report.url)
        while not STOP.wait(3600.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
    return receiver.report
