"""The webhook listener's socket server: binding ``HOST:PORT`` (bind errors are UsageError,
exit 2), a thread per connection and at most ``MAX_CONNECTIONS`` of them at once.

What one request gets is listener_http.py's; this module only accepts connections.
"""

from __future__ import annotations

import errno
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from backout.errors import UsageError
from backout.triggers.listener_address import ListenAddress

MAX_CONNECTIONS = 16


class Server(ThreadingHTTPServer):
    # a slow client must never keep the run from ending, nor the command from exiting
    daemon_threads, block_on_close = True, False
    request_queue_size = 64  # a burst of connections waits to be accepted, not refused

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up in DNS, which can hang for seconds
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # a flood of connections must not become a flood of threads: over the limit, close
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # no thread could be started
            self.slots.release()
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Never a traceback on the operator's terminal: a client that went away is no
        news, anything else is one line."""
        error = sys.exc_info()[1]
        if error is None or isinstance(error, OSError):
            return
        print(
            f"backout: listener: request from {client_address[0]} failed: "
            f"{type(error).__name__}: {error}",
            file=sys.stderr,
        )


class _Server6(Server):
    address_family = socket.AF_INET6


def bind(address: ListenAddress, handler: type[BaseHTTPRequestHandler]) -> Server:
    """A server bound to ``address``, serving requests with ``handler`` once started."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(
            f"cannot listen on {address}: cannot resolve {address.host!r} ({exc.strerror})",
            hint="use an IP address of this machine, e.g. 127.0.0.1:9095",
        ) from exc
    # "localhost" may resolve to ::1 first; receivers are usually given 127.0.0.1
    family, _, _, _, sockaddr = min(infos, key=lambda info: info[0] != socket.AF_INET)
    server = _Server6 if family == socket.AF_INET6 else Server
    try:
        return server((str(sockaddr[0]), int(sockaddr[1])), handler)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {address}: {exc.strerror or exc}", hint=_bind_hint(exc, address)
        ) from exc


def _bind_hint(exc: OSError, address: ListenAddress) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"another process listens on port {address.port}; stop it or choose another port"
    if exc.errno == errno.EACCES:
        return "ports below 1024 need privileges; choose a port above 1024, e.g. 9095"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{address.host} is not an address of this machine; e.g. 127.0.0.1"
    return "use HOST:PORT with a free port, e.g. 127.0.0.1:9095"
