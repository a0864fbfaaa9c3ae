"""Many Prometheus-format targets on one port, for watching fleets (tests and bench/).

``GET /t/N/metrics`` answers target N's ``http_requests_total`` counters, computed from the
clock at each request (``RATE`` requests a second since the server started), so any number
of targets costs nothing between scrapes. A target named *bad* serves 50% of its requests
as 5xx from the moment it turned bad (``bad_after`` seconds after the start, or when
:meth:`TargetServer.turn_bad` is called). The server counts the requests it answered.

Run it as a process (``python -m tests.fleet_targets --port P --bad 3,7``): it prints
``ready PORT`` once it listens and serves until SIGTERM; the ``--bad`` targets turn bad
after ``--bad-after`` seconds, or (without it) when the process gets SIGUSR1. It speaks
just enough HTTP/1.1 (keep-alive, Content-Length) for a scraper's GETs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
import time

RATE = 100.0  # requests a second each target pretends to serve
PLAN = """\
plan: fleet-{n}
service: fleet-{n}
telemetry:
  errors:
    scrape:
      url: {url}
      ratio:
        numerator: {{metric: http_requests_total, match: {{code: "5.."}}}}
        denominator: {{metric: http_requests_total}}
    interval: {interval}
triggers:
  - name: errors above 10%
    signal: errors
    threshold: {{above: 0.1}}
steps:
  - name: back out
    run: {step}
"""


def fleet_plan(n: int, url: str, interval: str = "200ms", step: str = '["true"]') -> str:
    """Deployment ``fleet-N``'s plan: its target's 5xx ratio above 10% backs it out."""
    return PLAN.format(n=n, url=url, interval=interval, step=step)


class TargetServer:
    def __init__(self, bad: set[int] | None = None, bad_after: float = 0.0) -> None:
        self.started = time.monotonic()
        self.bad_since: dict[int, float] = {n: self.started + bad_after for n in bad or set()}
        self.requests = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what a target says ----------------------------------------------------------------
    def turn_bad(self, target: int) -> None:
        self.bad_since[target] = time.monotonic()

    def body(self, target: int) -> bytes:
        now = time.monotonic()
        total = RATE * (now - self.started)
        since = self.bad_since.get(target)
        errors = RATE * 0.5 * (now - since) if since is not None and now > since else 0.0
        return (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200",target="{target}"}} {total - errors:.3f}\n'
            f'http_requests_total{{code="500",target="{target}"}} {errors:.3f}\n'
        ).encode()

    # --- serving -----------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                parts = head.split(b" ", 2)
                path = parts[1].decode() if len(parts) > 1 else ""
                pieces = path.split("/")
                if len(pieces) == 4 and pieces[1] == "t" and pieces[2].isdigit():
                    body, status = self.body(int(pieces[2])), b"200 OK"
                else:
                    body, status = b"not found\n", b"404 Not Found"
                self.requests += 1
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        writer.close()

    async def start_serving(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    # --- in a thread (tests) -----------------------------------------------------------------
    def __enter__(self) -> TargetServer:
        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            loop.run_until_complete(self.start_serving())
            self._ready.set()
            loop.run_forever()
            assert self._server is not None
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="fleet-targets", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def url(self, target: int) -> str:
        return f"http://127.0.0.1:{self.port}/t/{target}/metrics"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bad", default="", help="comma-separated target numbers")
    parser.add_argument("--bad-after", type=float, default=None)
    args = parser.parse_args()
    bad = {int(n) for n in args.bad.split(",") if n}
    server = TargetServer(bad if args.bad_after is not None else set(), args.bad_after or 0.0)

    def turn_bad() -> None:
        for target in bad:
            server.turn_bad(target)

    async def serve() -> None:
        await server.start_serving(args.port)
        print(f"ready {server.port}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, turn_bad)
        await stop.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
