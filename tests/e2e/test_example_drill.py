"""A real drill of examples/rehearsed-symlink.yaml as shipped (only its port changed): a
small HTTP service on a free port plays `checkout`, `bin/deploy` and `bin/restart` do what
the example's header says, the known-bad release answers 500 on /health, the example's
own triggers detect it, its backout restores the good release under the example's
`fail_first` fault, and the evidence is recorded."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from backout import commands
from backout.settings import Settings
from tests.callers import caller

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rehearsed-symlink.yaml"

SERVICE = """
import http.server, sys
from pathlib import Path
bad = "bad" in Path("releases/current/checkout.conf").read_text()
served = {"200": 0, "500": 0}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/metrics":
            body = "".join(f'http_requests_total{{code="{c}"}} {n}\\n' for c, n in served.items())
            code = 200
        else:
            code = 500 if bad else 200
            served[str(code)] += 1
            body = "bad\\n" if bad else "ok\\n"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

RESTART = """#!/bin/sh
# bin/restart SERVICE: stop the service, start it on releases/current, wait until it answers
cd "$(dirname "$0")/.."
[ -f run/$1.pid ] && kill "$(cat run/$1.pid)" 2>/dev/null
mkdir -p run
setsid {python} service.py "$CHECKOUT_PORT" > run/$1.log 2>&1 < /dev/null &
echo $! > run/$1.pid
probe="import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)"
for i in $(seq 100); do
  {python} -c "$probe" "$CHECKOUT_PORT" 2>/dev/null && exit 0
  sleep 0.05
done
exit 1
"""

DEPLOY = """#!/bin/sh
# bin/deploy SERVICE RELEASE: point releases/current at RELEASE and restart SERVICE
cd "$(dirname "$0")/.."
ln -sfn "$2" releases/current && exec ./bin/restart "$1"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_example_plan_drills_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    for release, conf in (("v1", "good"), ("known-bad", "bad")):
        (tmp_path / "releases" / release).mkdir(parents=True)
        (tmp_path / "releases" / release / "checkout.conf").write_text(conf + "\n")
    (tmp_path / "releases" / "current").symlink_to("v1")
    (tmp_path / "service.py").write_text(textwrap.dedent(SERVICE))
    (tmp_path / "bin").mkdir()
    for name, text in (("restart", RESTART.format(python=sys.executable)), ("deploy", DEPLOY)):
        (tmp_path / "bin" / name).write_text(text)
        (tmp_path / "bin" / name).chmod(0o755)
    plan = tmp_path / "plan.yaml"
    plan.write_text(EXAMPLE.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    monkeypatch.setenv("CHECKOUT_PORT", str(port))  # bin/restart reads it
    pidfile = tmp_path / "run" / "checkout.pid"
    try:
        assert os.system(f"{tmp_path / 'bin' / 'restart'} checkout") == 0
        me = caller(Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}", actor="ci"))
        commands.snapshot(me, plan, telemetry_window=0.5)
        report = commands.rehearse(me, plan)
    finally:
        if pidfile.exists():  # the service this test started, by its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert report.passed, report.message
    assert report.run.trigger is not None
    assert report.run.trigger["trigger"] == "health check failing for 5s"
    assert (tmp_path / "releases" / "current").readlink() == Path("v1")
    restart = report.run.steps[-1]
    assert (restart.name, restart.attempts) == ("restart the service", 2)  # fail_first
    assert [f["acted"] for f in report.faults] == [True]
    assert report.fits_rto is True
