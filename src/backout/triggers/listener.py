"""An HTTP listener for Alertmanager's webhook, writing what arrives to the trigger inbox.

Point an Alertmanager receiver at ``http://HOST:PORT/alertmanager`` with the listener's
credential in its ``http_config`` (docs/triggers.md#alertmanager). Whoever can POST here can
back the service out, so a credential is always required, on loopback too: any local
process could reach a loopback port.

What the listener answers, and what the running deploy or watch journals of it:

* 401 (with ``WWW-Authenticate``) without the right credential: ``alert_rejected``;
* 411 / 400 / 413 for a missing, malformed or too large ``Content-Length`` (the body is
  never read then), 400 for a body that is not Alertmanager's webhook: ``alert_rejected``;
* 200 for a webhook: every alert in it is queued for the run, which journals each one,
  acted on or not (watcher.py says why not);
* 503 if the store cannot take it (Alertmanager retries a 5xx, not a 4xx).

A request must arrive whole within ``deadline`` seconds (a client sending a byte a second
would otherwise hold its thread forever), and at most ``MAX_CONNECTIONS`` are served at once.

This module's one job is the ``Listener`` a run holds: it binds, serves while the run runs,
and ties a request to the run. The parts are its siblings:

* listener_auth.py: the credential, and whether a request carries it;
* listener_address.py: ``--listen HOST:PORT`` (``listen_address``, ``ListenAddress``);
* listener_server.py: the socket server, binding and the connection limit;
* listener_http.py: one request: path, credential, framing, deadline and reply;
* listener_inbox.py: the webhook's payload, and what is queued in the inbox for the run.
"""

from __future__ import annotations

import threading
from email.message import Message

from sqlalchemy.exc import SQLAlchemyError

from backout.errors import BackoutError
from backout.store.db import Store
from backout.triggers.listener_address import ListenAddress, listen_address
from backout.triggers.listener_auth import TOKEN_ENV
from backout.triggers.listener_http import MAX_BODY, PATH, REQUEST_DEADLINE_S, handler_for
from backout.triggers.listener_inbox import (
    KIND,
    REJECTIONS_PER_MINUTE,
    Throttle,
    parse_webhook,
    queue_alerts,
    queue_rejection,
)
from backout.triggers.listener_server import MAX_CONNECTIONS, bind

# the names callers outside triggers/ have always imported from here
__all__ = [
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "REJECTIONS_PER_MINUTE",
    "TOKEN_ENV",
    "ListenAddress",
    "Listener",
    "listen_address",
]


class Listener:
    """Serves ``POST /alertmanager`` while the run runs; bind errors are UsageError (exit 2)."""

    def __init__(
        self,
        store: Store,
        service: str,
        run_id: str | None,
        address: str,
        deadline: float = REQUEST_DEADLINE_S,
    ) -> None:
        self.address = address if isinstance(address, ListenAddress) else listen_address(address)
        self.credential = self.address.credential
        self.store, self.service = store, service
        self.deadline = deadline
        self._has_run = threading.Event()
        self.run_id = run_id
        self.throttle = Throttle(REJECTIONS_PER_MINUTE)
        self.server = bind(self.address, handler_for(self))
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @run_id.setter
    def run_id(self, value: str | None) -> None:
        # the port is bound before the run exists (a busy port must not leave a run behind)
        self._run_id = value
        if value is not None:
            self._has_run.set()

    def _run(self) -> str | None:
        """The run to queue for; a request arriving before it exists waits for it, or
        its alerts would be queued for no run and never read."""
        self._has_run.wait(self.deadline)
        return self._run_id

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        shown = f"[{host!s}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}{PATH}"

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    path, what = PATH, "Alertmanager webhooks"

    def accept(self, body: bytes, headers: Message | None = None) -> tuple[int, str]:
        """Validate one webhook body and queue its alerts; (HTTP status, message)."""
        payload = parse_webhook(body)
        if isinstance(payload, str):
            self.reject(payload, KIND)
            return 400, payload
        run_id = self._run()
        if run_id is None:
            return 503, "the run has not started yet; retry"
        try:
            queue_alerts(self.store, self.service, payload, run_id)
        except (BackoutError, SQLAlchemyError) as exc:
            # a 5xx: Alertmanager retries it (it gives up on a 4xx)
            return 503, f"the store cannot take the alerts now ({type(exc).__name__}); retry"
        firing = sum(a.status == "firing" for a in payload.alerts)
        return 200, f"{len(payload.alerts)} alert(s) queued ({firing} firing)"

    def reject(self, reason: str, client: str) -> None:
        """Queue a rejection for the run's journal (throttled; never the secret). The
        client gets its 4xx even when the store cannot take the record."""
        dropped = self.throttle.admit()
        if dropped is None:
            return
        queue_rejection(self.store, self.service, reason, client, dropped, self._run())
