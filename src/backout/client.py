"""A client of ``backout server``'s API, for CLI verbs run against a server instead of a
store: ``backout journal RUN --server URL`` reads a run's journal over HTTP, and with
``--follow`` keeps reading its live events (Server-Sent Events: pushed, not polled).

The token comes from ``BACKOUT_TOKEN`` (never from a flag: a command line is visible to
every user of the machine in ``ps``). A problem+json answer becomes the error of the
tree with the same status (401, 403, 404, 409, 400), its detail and hint; a server that
cannot be reached is a :class:`ServerUnreachable` naming the URL.

A followed stream that drops (the server restarts, a proxy cuts it) is reopened with
``Last-Event-ID``, so no event is lost or printed twice; the stream ends when the run is
over, and so does :meth:`ApiClient.follow`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from backout.errors import (
    BackoutError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthenticated,
    UsageError,
)
from backout.kernel.events import Event

API = "/api/v1"
TOKEN_ENV = "BACKOUT_TOKEN"  # noqa: S105 (the variable's name, not a token)
SERVER_ENV = "BACKOUT_SERVER_URL"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0  # a live stream sends a keep-alive every 15 s
RECONNECT_TRIES = 5  # a dropped stream is reopened this many times in a row at most
RECONNECT_WAIT_S = 1.0
NEEDS_ATTENTION = "run_needs_attention"  # the event that leaves a run waiting for someone
_BY_STATUS: dict[int, type[UsageError]] = {
    400: UsageError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: UsageError,
}


class ServerUnreachable(BackoutError):
    """The server did not answer: not running, a wrong URL, a network in between."""

    exit_code = 1


def event_of(item: dict[str, Any], run_id: str) -> Event:
    """An event as ``backout journal --json`` (and the API) writes it, read back."""
    return Event(
        run_id=str(item.get("run_id") or run_id),
        seq=int(item["seq"]),
        at=float(item["at"]),
        kind=str(item["kind"]),
        step=item.get("step_index"),
        attempt=item.get("attempt"),
        data=dict(item.get("data") or {}),
    )


def error_of(response: httpx.Response) -> BackoutError:
    """The error a problem+json answer reports (or a plain one for any other body)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or f"{response.status_code} {response.reason_phrase}")
    hint = str(body.get("hint") or "")
    if response.status_code == 401:
        return Unauthenticated(
            f"the server refused the token: {detail}",
            hint=hint or f"set {TOKEN_ENV} to a token made with `backout token create`",
        )
    kind = _BY_STATUS.get(response.status_code)
    if kind is not None:
        return kind(detail, hint=hint)
    return BackoutError(f"the server answered {response.status_code}: {detail}", hint=hint)


@dataclass
class ApiClient:
    """``url``: the server's base URL (``http://host:8017``); ``token``: an API token."""

    url: str
    token: str

    @classmethod
    def of(cls, url: str, token: str | None) -> ApiClient:
        """A client of ``url``; an address that is not http(s) or no token is a UsageError."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"--server {url!r} is not a server's address",
                hint="give its base URL, e.g. http://backout.internal:8017",
            )
        if not token:
            raise UsageError(
                f"no API token: set {TOKEN_ENV} to read from {parts.netloc}",
                hint="make one with `backout token create --role viewer --actor NAME`",
            )
        return cls(url.strip().rstrip("/"), token.strip())

    def _client(self, read_timeout: float = READ_TIMEOUT_S) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + API,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_S),
        )

    def _unreachable(self, exc: httpx.TransportError | httpx.StreamError) -> ServerUnreachable:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return ServerUnreachable(
            f"cannot reach the server at {self.url}: {reason}",
            hint="is `backout server` running there, and is the URL (--server or "
            f"{SERVER_ENV}) right?",
        )

    def get_json(self, path: str) -> Any:
        try:
            with self._client() as client:
                response = client.get(path)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code != 200:
            raise error_of(response)
        return response.json()

    def journal(self, run_id: str) -> list[Event]:
        """A run's journal, every event in order."""
        items = self.get_json(f"/runs/{quote(run_id, safe='')}/journal")
        return [event_of(item, run_id) for item in items]

    def _last_seq(self, run_id: str) -> int:
        events = self.journal(run_id)
        return events[-1].seq if events else 0

    def follow(self, run_id: str, after: int = 0) -> Iterator[Event]:
        """A run's events from after ``after``, then each as it is written, until the run
        is over or needs attention (as ``backout journal --follow`` on a store). A dropped
        stream is reopened where it stopped."""
        path = f"/runs/{quote(run_id, safe='')}/events"
        last, drops = after, 0
        while True:
            try:
                with (
                    self._client() as client,
                    client.stream(
                        "GET",
                        path,
                        headers={"Accept": "text/event-stream", "Last-Event-ID": str(last)},
                    ) as response,
                ):
                    if response.status_code != 200:
                        response.read()
                        raise error_of(response)
                    for message in _messages(response.iter_lines()):
                        drops = 0
                        event = event_of(json.loads(message.data), run_id)
                        last = event.seq
                        yield event
                        if event.kind == NEEDS_ATTENTION and self._last_seq(run_id) == last:
                            return  # nothing after it: the run waits for someone
                return  # the server ended the stream: the run is over
            except (httpx.TransportError, httpx.StreamError) as exc:
                drops += 1
                if drops > RECONNECT_TRIES:
                    raise self._unreachable(exc) from None
                time.sleep(RECONNECT_WAIT_S)


@dataclass(frozen=True)
class Message:
    """One Server-Sent Events message."""

    id: str
    event: str
    data: str


def _messages(lines: Iterator[str]) -> Iterator[Message]:
    """The messages of an event stream (comments and ``retry:`` skipped), as the
    EventSource standard reads them: fields until a blank line."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield Message(
                    "".join(fields.get("id", [""])[-1:]),
                    "".join(fields.get("event", ["message"])[-1:]),
                    "\n".join(fields["data"]),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
