"""The demo's sample HTTP service (standard library only; copied into each release folder).

    GET /         the app: 200, or 500 for the release's ``fail_share`` of requests
    GET /health   {"status": "ok", "release": "<release folder name>"}
    GET /metrics  Prometheus text: demo_http_requests_total{code="..."}

The release is the name of the folder this file was started from (``releases/current``
resolved at start), so a restart after a symlink switch runs, and reports, the new one.
The service exits on its own when the process named by BACKOUT_DEMO_OWNER_PID is gone, so
a killed demo never leaves it behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MAX_LIFETIME_S = 600.0


class Counters:
    """Requests on / by status code, and the deterministic failure schedule."""

    def __init__(self, fail_share: float) -> None:
        self.fail_share = fail_share
        self.by_code: dict[int, int] = {}
        self.lock = threading.Lock()

    def next_code(self) -> int:
        with self.lock:
            served = sum(self.by_code.values())
            # spread failures evenly: request n fails when n * share crosses an integer
            fails = int((served + 1) * self.fail_share) > int(served * self.fail_share)
            code = 500 if fails else 200
            self.by_code[code] = self.by_code.get(code, 0) + 1
            return code

    def exposition(self) -> str:
        with self.lock:
            counts = dict(self.by_code) or {200: 0}
        lines = [
            "# HELP demo_http_requests_total Requests served on /, by status code.",
            "# TYPE demo_http_requests_total counter",
        ]
        lines += [f'demo_http_requests_total{{code="{c}"}} {n}' for c, n in sorted(counts.items())]
        return "\n".join(lines) + "\n"


def make_handler(release: str, greeting: str, counters: Counters) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self.reply(
                    200, "application/json", json.dumps({"status": "ok", "release": release})
                )
            elif self.path == "/metrics":
                self.reply(200, "text/plain; version=0.0.4", counters.exposition())
            elif self.path == "/":
                code = counters.next_code()
                self.reply(code, "text/plain", f"{greeting} from {release}" if code < 500 else "")
            else:
                self.reply(404, "text/plain", "not found")

        def reply(self, code: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """No access log: the demo's traffic would flood the log file."""

    return Handler


def read_config(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def watch_owner(owner_pid: int) -> None:
    """Exit when the demo is gone (even SIGKILLed), or after MAX_LIFETIME_S at the latest."""
    deadline = time.monotonic() + MAX_LIFETIME_S
    while time.monotonic() < deadline:
        try:
            os.kill(owner_pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            pass
        time.sleep(0.5)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    release = HERE.name
    settings = json.loads((HERE / "release.json").read_text())
    config = read_config(ROOT / "etc" / "demo.conf")
    counters = Counters(float(settings.get("fail_share", 0.0)))
    handler = make_handler(release, config.get("greeting", "hello"), counters)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as exc:
        sys.exit(f"release {release}: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}")
    owner = os.environ.get("BACKOUT_DEMO_OWNER_PID", "")
    if owner.isdigit():
        threading.Thread(target=watch_owner, args=(int(owner),), daemon=True).start()
    print(f"release {release} listening on 127.0.0.1:{args.port} (pid {os.getpid()})", flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
