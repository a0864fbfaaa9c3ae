"""A light, bounded traffic generator: a thread sending GET / at a steady rate."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

RATE_PER_S = 40.0
MAX_DURATION_S = 120.0  # a forgotten generator still stops
REQUEST_TIMEOUT_S = 1.0


class Traffic:
    """Counts what users saw: responses by status code and failed connections."""

    def __init__(self, url: str, rate: float = RATE_PER_S) -> None:
        self.url = url
        self.rate = rate
        self.codes: Counter[int] = Counter()
        self.connection_errors = 0
        self._lock = threading.Lock()  # the loop counts while the demo reads
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="backout-demo-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=REQUEST_TIMEOUT_S + 1.0)

    def counts(self) -> tuple[Counter[int], int]:
        """Responses by status code and failed connections, so far."""
        with self._lock:
            return Counter(self.codes), self.connection_errors

    def summary(self) -> dict[str, object]:
        codes, connection_errors = self.counts()
        return {
            "requests": sum(codes.values()) + connection_errors,
            "by_code": {str(code): count for code, count in sorted(codes.items())},
            "connection_errors": connection_errors,
        }

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        stop_at = time.monotonic() + MAX_DURATION_S
        next_at = time.monotonic()
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            while time.monotonic() < stop_at and not self._stop.is_set():
                self._send(client)
                next_at = max(next_at + interval, time.monotonic() - interval)  # no bursts
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _send(self, client: httpx.Client) -> None:
        try:
            code = client.get(self.url).status_code
        except httpx.HTTPError:
            with self._lock:
                self.connection_errors += 1
            return
        with self._lock:
            self.codes[code] += 1
