"""The Alertmanager webhook listener on real sockets: credentials, request framing, slow
clients, connection floods, and `--listen` errors through the CLI. Everything a request
leaves behind is read back from a real store (SQLite here; the run-level tests in
test_alert_dedup.py cover PostgreSQL too)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backout.cli import cli
from backout.errors import UsageError
from backout.store import inbox
from backout.store.db import Store, open_store
from backout.triggers.listener import (
    MAX_BODY,
    MAX_CONNECTIONS,
    REJECTIONS_PER_MINUTE,
    TOKEN_ENV,
    Listener,
    listen_address,
)
from tests.services import free_port, wait_until

TOKEN = "listener-test-token-4f1c9a0e7b"
BEARER = f"Authorization: Bearer {TOKEN}\r\n"
DEADLINE_S = 2.0  # the listener's request deadline in these tests (10 s by default)
WAIT_S = 15.0  # how long a test waits for an answer that must come


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store' / 'backout.db'}")
    yield opened
    opened.dispose()


def start(store: Store, deadline: float = DEADLINE_S, user: str | None = None) -> Listener:
    address = listen_address(f"127.0.0.1:{free_port()}", user=user, environ={TOKEN_ENV: TOKEN})
    return Listener(store, "shop", "run-1", address, deadline=deadline)


@pytest.fixture
def listener(store: Store) -> Iterator[Listener]:
    with start(store) as running:
        yield running


def port_of(listener: Listener) -> int:
    return int(listener.server.server_address[1])


def exchange(port: int, request: bytes) -> bytes:
    """Send a raw request and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(request)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def post(port: int, body: bytes, headers: str = BEARER) -> bytes:
    head = f"POST /alertmanager HTTP/1.1\r\nHost: x\r\n{headers}"
    return exchange(port, f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)


def webhook(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="HighErrorRate"}',
            "status": "firing",
            "receiver": "backout",
            "externalURL": "http://am-1.example:9093",
            "alerts": list(alerts),
        }
    ).encode()


def firing(starts_at: str = "2026-11-26T12:00:00.123456789+02:00") -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "shop"},
        "annotations": {"summary": "5xx above 5%"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "1a30ba71cca2921f",
    }


def queued(store: Store) -> list[tuple[str, str, dict[str, Any]]]:
    with store.session() as session:
        rows = inbox.take(session, "shop", "run-1", 0.0)
        return [(r.kind, r.reason, dict(r.data)) for r in rows]


# --- request framing ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("length_header", "expected", "says"),
    [
        ("Content-Length: abc\r\n", 400, "'abc' is not a number of bytes"),
        ("Content-Length: -1\r\n", 400, "'-1' is not a number of bytes"),
        ("Content-Length: 1e3\r\n", 400, "'1e3' is not a number of bytes"),
        ("", 411, "Content-Length is required"),
        ("Transfer-Encoding: chunked\r\n", 411, "chunked body is not accepted"),
        ("Content-Length: 5\r\nContent-Length: 6\r\n", 400, "conflicting Content-Length"),
        (f"Content-Length: {MAX_BODY + 1}\r\n", 413, "over the limit"),
        ("Content-Length: 99999999999999999999999999\r\n", 400, "not a number of bytes"),
    ],
)
def test_a_bad_content_length_gets_a_4xx_and_no_traceback(
    listener: Listener,
    store: Store,
    capfd: pytest.CaptureFixture[str],
    length_header: str,
    expected: int,
    says: str,
) -> None:
    # only the head is sent: an answer (not the 408 of the deadline) proves that the
    # listener judged the length without waiting for a body
    head = f"POST /alertmanager HTTP/1.1\r\nHost: x\r\n{BEARER}{length_header}\r\n"
    response = exchange(port_of(listener), head.encode())
    assert status(response) == expected
    assert says in response.decode()
    [(kind, reason, data)] = queued(store)
    assert kind == "rejected"
    assert says in reason
    assert data == {"client": "127.0.0.1"}
    assert "Traceback" not in capfd.readouterr().err


def test_a_slow_client_is_cut_off_at_the_deadline(listener: Listener) -> None:
    """A slowloris: a header byte every 0.2 s passes every per-read timeout, forever."""
    port = port_of(listener)
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)

    def drip() -> None:
        request = b"POST /alertmanager HTTP/1.1\r\nX-Slow: " + b"a" * 10_000
        for byte in request:
            try:
                sock.send(bytes([byte]))
            except OSError:
                return  # cut off
            time.sleep(0.2)

    began = time.monotonic()
    threading.Thread(target=drip, daemon=True).start()
    # meanwhile a well-behaved request is served at once
    assert status(post(port, webhook(firing()))) == 200
    with sock:
        response = read_all(sock)
    took = time.monotonic() - began
    assert status(response) == 408
    assert took > DEADLINE_S - 0.5  # not before its time (a busy machine may be later)


def test_a_body_that_stops_halfway_is_cut_off_at_the_deadline(listener: Listener) -> None:
    head = f"POST /alertmanager HTTP/1.1\r\nHost: x\r\n{BEARER}Content-Length: 100\r\n\r\n"
    began = time.monotonic()
    response = exchange(port_of(listener), head.encode() + b'{"version"')
    assert status(response) == 408
    assert time.monotonic() - began > DEADLINE_S - 0.5


def test_a_flood_of_connections_is_bounded(store: Store) -> None:
    with start(store, deadline=60.0) as listener:
        port = port_of(listener)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as extra:
                assert read_all(extra) == b""  # closed at once: no thread for it
        finally:
            for sock in idle:
                sock.close()

        # the idle connections' threads end when they close; then requests are served again
        def served() -> bool:
            try:
                return status(post(port, webhook(firing()))) == 200
            except (OSError, IndexError):
                return False

        wait_until(served, WAIT_S, "the listener to serve again")


def test_other_methods_and_paths(listener: Listener) -> None:
    port = port_of(listener)
    get = exchange(port, b"GET /alertmanager HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(get) == 405
    assert b"Allow: POST" in get
    head = f"POST /other HTTP/1.1\r\nHost: x\r\n{BEARER}Content-Length: 2\r\n\r\n{{}}"
    assert status(exchange(port, head.encode())) == 404
    assert status(exchange(port, b"garbage\r\n\r\n")) == 400


# --- credentials ----------------------------------------------------------------------------
def test_requests_without_the_token_get_401_and_are_journalled_without_secrets(
    listener: Listener, store: Store
) -> None:
    port = port_of(listener)
    body = webhook(firing())
    wrong = "Authorization: Bearer not-the-token-but-long-enough\r\n"
    basic = "Authorization: Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode() + "\r\n"
    for headers in ("", wrong, basic, "Authorization: Bearer\r\n"):
        response = post(port, body, headers)
        assert status(response) == 401
        assert b'WWW-Authenticate: Bearer realm="backout"' in response
    rows = queued(store)
    assert [kind for kind, _, _ in rows] == ["rejected"] * 4
    reasons = [reason for _, reason, _ in rows]
    assert reasons[0] == "unauthenticated request from 127.0.0.1: no Authorization header"
    assert reasons[1].endswith("wrong token")
    assert reasons[2].endswith("'Basic' credentials where Bearer was expected")
    recorded = json.dumps(rows)
    assert TOKEN not in recorded
    assert "not-the-token" not in recorded


def test_the_right_token_queues_every_alert(listener: Listener, store: Store) -> None:
    resolved = {**firing(), "status": "resolved", "endsAt": "2026-11-26T10:05:00Z"}
    response = post(port_of(listener), webhook(firing(), resolved))
    assert status(response) == 200
    assert b"2 alert(s) queued (1 firing)" in response
    rows = queued(store)
    assert [(kind, reason) for kind, reason, _ in rows] == [("alertmanager", "HighErrorRate")] * 2
    data = rows[0][2]
    # the same instant as every HA member would send it, whatever its zone
    assert data["starts_at"] == "2026-11-26T10:00:00.123456+00:00"
    assert data["fingerprint"] == "1a30ba71cca2921f"
    assert data["delivered_by"] == "http://am-1.example:9093"
    assert [r[2]["status"] for r in rows] == ["firing", "resolved"]


def test_a_malformed_webhook_is_400_and_journalled(listener: Listener, store: Store) -> None:
    port = port_of(listener)
    assert status(post(port, b"{not json")) == 400
    assert status(post(port, webhook({**firing(), "startsAt": "yesterday"}))) == 400
    rows = queued(store)
    assert [kind for kind, _, _ in rows] == ["rejected", "rejected"]
    assert all(r.startswith("malformed Alertmanager webhook") for _, r, _ in rows)


def test_basic_auth_with_a_user(store: Store) -> None:
    with start(store, user="alertmanager") as listener:
        port = port_of(listener)

        def basic(user: str, password: str) -> str:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            return f"Authorization: Basic {pair}\r\n"

        assert status(post(port, webhook(firing()), basic("alertmanager", TOKEN))) == 200
        refused = post(port, webhook(firing()), basic("someone", TOKEN))
        assert status(refused) == 401
        assert b'WWW-Authenticate: Basic realm="backout"' in refused
        assert status(post(port, webhook(firing()), BEARER)) == 401


def test_rejections_are_journalled_at_a_bounded_rate(listener: Listener, store: Store) -> None:
    port = port_of(listener)
    for _ in range(REJECTIONS_PER_MINUTE + 5):
        assert status(post(port, webhook(firing()), "")) == 401
    assert len(queued(store)) == REJECTIONS_PER_MINUTE


def test_a_store_that_is_down_gets_503_so_alertmanager_retries() -> None:
    down = Store(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    with start(down) as listener:
        response = post(port_of(listener), webhook(firing()))
        assert status(response) == 503
        assert status(post(port_of(listener), webhook(firing()), "")) == 401
    down.dispose()


def test_ipv6_loopback(store: Store) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    address = listen_address(f"[::1]:{free_port()}", environ={TOKEN_ENV: TOKEN})
    try:
        listener = Listener(store, "shop", "run-1", address)
    except UsageError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc.message}")
    with listener, socket.create_connection(("::1", address.port), timeout=WAIT_S) as sock:
        assert listener.url == f"http://[::1]:{address.port}/alertmanager"
        body = webhook(firing())
        head = f"POST /alertmanager HTTP/1.1\r\nHost: x\r\n{BEARER}"
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert status(read_all(sock)) == 200


# --- the credential's sources ---------------------------------------------------------------
def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")  # `openssl rand -hex 32 > token` ends with a newline
    from_file = listen_address("127.0.0.1:9095", str(token_file), environ={TOKEN_ENV: "x" * 20})
    assert from_file.credential.secret == TOKEN  # the file wins over the environment
    assert from_file.credential.source == f"--listen-token-file {token_file}"
    from_env = listen_address("127.0.0.1:9095", environ={TOKEN_ENV: TOKEN})
    assert (from_env.credential.secret, from_env.credential.source) == (TOKEN, TOKEN_ENV)
    assert TOKEN not in repr(from_env.credential)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("short\n", "has 5 characters; at least 16 are needed"),
        ("has spaces in the middle of it\n", "visible ASCII characters, without spaces"),
        ("", "visible ASCII characters"),
    ],
)
def test_a_bad_token_file_is_refused(tmp_path: Path, content: str, says: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    with pytest.raises(UsageError) as caught:
        listen_address("127.0.0.1:9095", str(token_file), environ={})
    assert says in caught.value.message
    assert caught.value.exit_code == 2


def test_without_a_credential_the_listener_refuses_to_start() -> None:
    with pytest.raises(UsageError) as loopback:
        listen_address("127.0.0.1:9095", environ={})
    assert "needs a credential" in loopback.value.message
    assert "any local process could POST an alert" in loopback.value.message
    with pytest.raises(UsageError) as anywhere:
        listen_address("0.0.0.0:9095", environ={})
    assert anywhere.value.message.startswith(
        "refusing to listen on 0.0.0.0:9095 without a credential: it is not a loopback address"
    )
    assert "--listen-token-file" in anywhere.value.hint


# --- through the CLI ------------------------------------------------------------------------
PLAN = """\
plan: shop
service: shop
triggers:
  - name: paged
    alertmanager: {match: {service: shop}}
steps:
  - name: restore
    run: ['true']
"""


@pytest.fixture
def plan(tmp_path: Path) -> str:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return str(path)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--listen", "127.0.0.1:99999"], True, "port 99999 is out of range"),
        (["--listen", "nonsense"], True, "--listen 'nonsense' is not HOST:PORT"),
        (["--listen", "127.0.0.1:"], True, "is not HOST:PORT"),
        (["--listen", "0.0.0.0:9095"], False, "refusing to listen on 0.0.0.0:9095"),
        (["--listen", "127.0.0.1:9095"], False, "needs a credential"),
        (["--listen-token-file", "token"], True, "--listen-token-file applies only with --listen"),
        (
            ["--listen", "127.0.0.1:9095", "--listen-token-file", "/nonexistent"],
            True,
            "cannot read",
        ),
        (["--listen", "127.0.0.1:BUSY"], True, "Address already in use"),
    ],
)
@pytest.mark.parametrize("verb", ["watch", "deploy"])
def test_a_bad_listen_is_one_error_line_and_exit_2(
    tmp_path: Path, plan: str, busy_port: int, verb: str, args: list[str], env: bool, says: str
) -> None:
    if verb == "deploy":
        Path(plan).write_text(PLAN + "deploy:\n  stages:\n    - name: all\n      hold: 1s\n")
    args = [a.replace("BUSY", str(busy_port)) for a in args]
    db = f"sqlite:///{tmp_path / 'store' / 'backout.db'}"
    result = CliRunner(env={TOKEN_ENV: TOKEN if env else ""}).invoke(
        cli, ["--db", db, verb, plan, *args], obj={}
    )
    assert result.exit_code == 2, result.output
    error = [line for line in result.stderr.splitlines() if line.strip()]
    assert error[0].startswith("error: ")
    assert says in error[0]
    assert len(error) == 2
    assert error[1].startswith("hint: ")
    assert "Traceback" not in result.output
