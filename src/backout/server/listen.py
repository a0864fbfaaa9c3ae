"""Run the API (``backout server``): parse ``--listen``, bind the socket, run uvicorn.

- ``HOST:PORT`` (``[::1]:8017`` for IPv6; port 0 picks a free one). The socket is bound
  before uvicorn starts, as ``backout flags serve`` binds its own: a busy port or a foreign
  address is a one-line usage error (exit 2).
- ``--open`` (no token needed to read) is refused unless the bound address is loopback:
  anyone who can reach a public address could otherwise read every run.
- SIGTERM and SIGINT stop the server gracefully: no new connections, live event streams
  end (cleanly: a client reconnects elsewhere with its Last-Event-ID), in-flight requests
  finish, and :func:`serve` returns the signal, for the CLI to exit 128 + its number.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from backout.errors import UsageError
from backout.flags import listen as flag_listen
from backout.flags.guard import Limits
from backout.server.app import create_app
from backout.server.events import Streams
from backout.server.plan_folder import PlanFolder
from backout.server.upkeep import Upkeep
from backout.server.workers import DEFAULT_DRAIN, Workers, worker_caller
from backout.settings import Settings
from backout.store.db import open_store

LISTEN_ENV = "BACKOUT_SERVER_LISTEN"
DEFAULT_LISTEN = "127.0.0.1:8017"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_ADDRESS = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")
_FORMS = "HOST:PORT, e.g. 127.0.0.1:8017, 0.0.0.0:8017 or [::1]:8017"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as (host, port); an empty host is 127.0.0.1."""
    found = _ADDRESS.match(text.strip())
    port = int(found.group("port")) if found else -1
    if found is None or port > 65535:
        raise UsageError(f"--listen {text!r} is not an address to listen on", hint=f"give {_FORMS}")
    return found.group("v6") or found.group("host") or "127.0.0.1", port


def listen(address: str, *, open_access: bool) -> flag_listen.FlagListener:
    """The bound, listening socket; ``--open`` on an address that is not loopback refused."""
    host, port = parse_listen(address)
    try:
        listener = flag_listen.listen(host, port, None, allow_no_token=True)
    except UsageError as exc:  # its hints name flags serve's --port
        exc.hint = exc.hint.replace("another --port", "another port").replace("--port ", "port ")
        raise
    bound = str(listener.sock.getsockname()[0]).partition("%")[0]
    if open_access and not ipaddress.ip_address(bound).is_loopback:
        listener.sock.close()
        raise UsageError(
            f"refusing --open on {host} ({bound}): it is not a loopback address, and anyone "
            "who could reach it would read every run without a token",
            hint="bind 127.0.0.1 or [::1] with --open, or drop --open and give clients "
            "tokens (`backout token create --role viewer --actor NAME`)",
        )
    listener.warning = ""
    return listener


class ApiServer(flag_listen.FlagServer):
    """The flag server's uvicorn setup; a stop signal also ends the live event streams,
    which would otherwise hold the graceful stop until its timeout, and drains the
    workers (``--workers``): the first signal, and any once uvicorn has stopped (uvicorn
    raises the signals it caught again as it stops: those are not news). The server's own
    sweeps (:mod:`backout.server.upkeep`) start with it, before its first request."""

    def __init__(
        self, config: uvicorn.Config, streams: Streams, workers: Workers, upkeep: Upkeep
    ) -> None:
        super().__init__(config)
        self.streams = streams
        self.workers = workers
        self.upkeep = upkeep
        self.draining = False  # uvicorn has stopped; the workers are draining

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.upkeep.ensure_started(self.config.loaded_app)  # the app as uvicorn serves it

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stopped_by is None or self.draining:
            self.workers.signal(sig)
        self.streams.stop()
        super().handle_exit(sig, frame)


def serve(
    settings: Settings,
    listener: flag_listen.FlagListener,
    *,
    open_access: bool,
    plans: PlanFolder | None = None,
    ready: Callable[[], None] = lambda: None,
    workers: int = 0,
    drain: float = DEFAULT_DRAIN,
) -> int | None:
    """Serve the API on ``listener`` until SIGTERM or SIGINT; the signal that stopped it.
    ``ready`` runs once the store is open (at the current schema), ``workers`` worker
    threads run (:mod:`backout.server.workers`) and the signals stop the server
    gracefully; the workers then drain (the step in flight may go on for ``drain``
    seconds) before this returns."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with listener.sock:
        store = open_store(settings.database_url)
        try:
            streams = Streams()
            app = create_app(store, settings, open_access=open_access, streams=streams, plans=plans)
            crew = Workers(worker_caller(store, settings), workers, drain=drain)
            config = flag_listen.make_server(app, Limits()).config
            server = ApiServer(config, streams, crew, app.state.upkeep)
            with flag_listen.signals_stop(server):
                crew.start()
                try:
                    ready()
                    server.run(sockets=[listener.sock])
                finally:
                    server.draining = True
                    crew.stop(server.stopped_by or signal.SIGTERM)
        finally:
            store.dispose()
    return server.stopped_by
