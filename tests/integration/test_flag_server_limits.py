"""The flag server under hostile or careless clients, over real sockets: body size and JSON
depth caps, deadlines for slow heads and bodies, keep-alive, the bearer token, and
``backout flags serve`` itself — refusing bad addresses and busy ports before uvicorn
starts, and stopping gracefully on SIGTERM (in-flight requests finish, one line, 143).

Every wait is on an event (a socket closing, a line in a log, a process exiting) with a
generous deadline; none is a sleep budget.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from backout.cli import cli
from backout.commands import flags as service
from backout.flags import FlagChange
from backout.flags.guard import MIB, Limits, too_deep
from backout.settings import Settings
from tests.callers import caller
from tests.integration.flag_server import FlagServer, flag_server, start_serve
from tests.services import stop_process

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SINGLE = "/ofrep/v1/evaluate/flags/f"
BULK = "/ofrep/v1/evaluate/flags"
# short deadlines, so the tests that wait for them finish soon; the caps are the defaults
FAST = Limits(head_timeout=1.0, body_timeout=1.0, keep_alive=1)
EVENT_TIMEOUT_S = 30.0  # the deadline for anything the server should do "soon"


@pytest.fixture
def server(store_url: str) -> Iterator[FlagServer]:
    service.set_flag(
        caller(Settings(database_url=store_url, actor="t")), "f", FlagChange(enabled=True)
    )
    with flag_server(store_url, limits=FAST) as running:
        yield running


def connect(server: FlagServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=EVENT_TIMEOUT_S)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the deadline)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def head(path: str, *lines: str) -> bytes:
    text = f"POST {path} HTTP/1.1\r\nHost: test\r\n" + "".join(f"{line}\r\n" for line in lines)
    return (text + "\r\n").encode()


def status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    top, _, body = answer.partition(b"\r\n\r\n")
    return int(top.split()[1]), json.loads(body)


# --- body size ------------------------------------------------------------------------------
def test_a_declared_64_mib_body_is_refused_before_it_is_read(server: FlagServer) -> None:
    with connect(server) as sock:
        sock.sendall(head(SINGLE, f"Content-Length: {64 * MIB}") + b" " * 4096)
        answer = read_until_closed(sock)  # closed: the rest of the body is never read
    status, body = status_and_json(answer)
    assert status == 413
    assert body == {
        "key": "f",
        "errorCode": "GENERAL",
        "errorDetails": "the body is larger than 1 MiB",
    }
    assert b"connection: close" in answer.lower()


def test_a_chunked_body_is_counted_as_it_arrives(server: FlagServer) -> None:
    chunk = b" " * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    with connect(server) as sock:
        sock.sendall(head(BULK, "Transfer-Encoding: chunked") + framed * 17)  # 1 MiB + 64 KiB
        status, body = status_and_json(read_until_closed(sock))
    assert (status, body["errorCode"]) == (413, "GENERAL")


def test_a_body_of_1_mib_is_evaluated(server: FlagServer) -> None:
    assert Limits().max_body == MIB
    padded = b'{"context": {"targetingKey": "u"}}'.ljust(MIB)
    answer = httpx.post(server.url + SINGLE, content=padded, timeout=EVENT_TIMEOUT_S)
    assert (answer.status_code, answer.json()["value"]) == (200, True)


# --- JSON depth -----------------------------------------------------------------------------
def test_100000_deep_json_is_a_parse_error_not_a_500(server: FlagServer) -> None:
    deep = b'{"context": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with httpx.Client(base_url=server.url, timeout=EVENT_TIMEOUT_S) as http:
        one = http.post(SINGLE, content=deep)
        every = http.post(BULK, content=deep)
    assert one.status_code == 400
    assert one.json() == {
        "key": "f",
        "errorCode": "PARSE_ERROR",
        "errorDetails": "the body nests arrays or objects deeper than 32",
    }
    assert (every.status_code, every.json()["errorCode"]) == (400, "PARSE_ERROR")
    assert "key" not in every.json()  # the bulk failure has no key


def test_depth_is_counted_exactly(server: FlagServer) -> None:
    def nested(levels: int) -> bytes:  # the body object and context are 2 of the levels
        return b'{"context": {"a": ' + b"[" * (levels - 2) + b"]" * (levels - 2) + b"}}"

    with httpx.Client(base_url=server.url, timeout=EVENT_TIMEOUT_S) as http:
        assert http.post(SINGLE, content=nested(32)).status_code == 200
        assert http.post(SINGLE, content=nested(33)).status_code == 400


@pytest.mark.parametrize(
    ("body", "deepest"),
    [
        (b"{}", 1),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets inside strings do not count
        (b'{"a": "\\"[[["}', 1),  # nor after an escaped quote
        (b'{"a": [{"b": [{}]}]}', 5),
        (b"[[], [[]], {}]", 3),
    ],
)
def test_too_deep_counts_levels_outside_strings(body: bytes, deepest: int) -> None:
    json.loads(body)  # valid JSON, so the count is what the parser would recurse
    assert not too_deep(body, deepest)
    assert too_deep(body, deepest - 1)


def test_unbalanced_brackets_count_as_too_deep() -> None:
    assert too_deep(b"[" * 10, 32)
    assert too_deep(b"[]]", 32)


# --- slow clients ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /ofrep/v1/evaluate/flags/f HTTP/1.1\r\nHost: te"],
    ids=["nothing", "half-a-head"],
)
def test_a_slow_head_is_cut_off(server: FlagServer, sent: bytes) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        assert read_until_closed(sock) == b""  # closed without an answer
        waited = time.monotonic() - started
    assert FAST.head_timeout * 0.9 <= waited < EVENT_TIMEOUT_S
    # and the server kept answering others meanwhile
    assert httpx.post(server.url + SINGLE, timeout=EVENT_TIMEOUT_S).status_code == 200


def test_a_slow_body_gets_408(server: FlagServer) -> None:
    with connect(server) as sock:
        sock.sendall(head(SINGLE, "Content-Length: 40") + b'{"cont')
        status, body = status_and_json(read_until_closed(sock))
    assert status == 408
    assert body == {
        "key": "f",
        "errorCode": "GENERAL",
        "errorDetails": "the body did not arrive within 1s",
    }


def test_an_idle_keep_alive_connection_is_closed(server: FlagServer) -> None:
    with connect(server) as sock:
        sock.sendall(head(SINGLE, "Content-Length: 0"))
        answer = read_until_closed(sock)  # the answer, then the close after keep_alive
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_head_over_16_kib_is_refused(server: FlagServer) -> None:
    with connect(server) as sock:  # whole: the guard measures it
        sock.sendall(head(SINGLE, "X-Padding: " + "x" * (17 * 1024)))
        status, body = status_and_json(read_until_closed(sock))
    assert (status, body["errorDetails"]) == (431, "the request head is over 16384 bytes")
    with connect(server) as sock:  # still arriving: h11 stops buffering it
        sock.sendall(head(SINGLE, "X-Padding: " + "x" * (17 * 1024))[:-2])
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")  # refused (the head deadline says nothing)


def test_stopping_cuts_off_what_outlives_the_grace_period(store_url: str) -> None:
    patient = Limits(body_timeout=EVENT_TIMEOUT_S, shutdown_timeout=1)
    with connect_later() as sock:
        with flag_server(store_url, limits=patient) as running:
            sock.connect(("127.0.0.1", running.port))
            sock.sendall(head(SINGLE, "Content-Length: 2", "Expect: 100-continue"))
            assert sock.recv(100).startswith(b"HTTP/1.1 100 ")  # in flight now
        # the block's end stopped the server: after 1s it cut the request off
        assert (running.traffic.cut_off, running.traffic.handled) == (1, 0)


def connect_later() -> socket.socket:
    sock = socket.socket()
    sock.settimeout(EVENT_TIMEOUT_S)
    return sock


# --- the token ------------------------------------------------------------------------------
def test_the_token_guards_every_route(store_url: str) -> None:
    service.set_flag(
        caller(Settings(database_url=store_url, actor="t")), "f", FlagChange(enabled=True)
    )
    with (
        flag_server(store_url, token=TOKEN) as running,
        httpx.Client(base_url=running.url, timeout=EVENT_TIMEOUT_S) as http,
    ):
        for method, path in [
            ("POST", SINGLE),
            ("POST", BULK),
            ("GET", "/flags"),
            ("GET", "/flags/f"),
        ]:
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]:
                refused = http.request(method, path, headers=headers)
                assert refused.status_code == 401, (method, path, headers)
                assert refused.headers["www-authenticate"].startswith("Bearer")
                assert refused.json()["errorCode"] == "GENERAL"
            assert http.request(method, path, headers=AUTH).status_code == 200
        lower = http.post(SINGLE, headers={"Authorization": f"bearer {TOKEN}"})
        assert lower.status_code == 200  # the scheme is case-insensitive (RFC 9110 §11.1)
        assert http.post(SINGLE, headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401


# --- `backout flags serve` --------------------------------------------------------------------
def serve_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    return CliRunner().invoke(cli, ["--db", url, "flags", "serve", *args], obj={}, env=env)


def assert_usage_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert "uvicorn" not in result.output.lower()
    assert "serving flags" not in result.output


def test_a_busy_port_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_cli(tmp_path, "--port", str(port))
    assert_usage_error(result, f"cannot listen on 127.0.0.1:{port}: the port is in use")
    assert "hint: pick another --port" in result.output


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("192.0.2.1", "this machine has no such address"),  # TEST-NET-1: never local
        ("no-such-host.invalid", "cannot listen on 'no-such-host.invalid'"),
    ],
)
def test_a_bad_address_is_a_usage_error(tmp_path: Path, host: str, message: str) -> None:
    assert_usage_error(serve_cli(tmp_path, "--host", host, "--port", "0"), message)


def test_a_public_address_needs_a_token(tmp_path: Path) -> None:
    result = serve_cli(tmp_path, "--host", "0.0.0.0", "--port", "0")
    assert_usage_error(result, "refusing to serve flags on 0.0.0.0 without a token")
    assert "--token-file" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read token file"),
        ("", "is empty"),
        ("short", "is 5 characters; a token needs at least 16"),
        ("has a space in the middle", "has spaces or characters a header cannot carry"),
    ],
)
def test_bad_token_files_are_usage_errors(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content + "\n")
    assert_usage_error(serve_cli(tmp_path, "--token-file", str(path)), message)


def test_a_token_given_twice_or_with_no_token_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    env = {"BACKOUT_FLAGS_TOKEN": TOKEN}
    assert_usage_error(
        serve_cli(tmp_path, "--token-file", str(path), env=env),
        "a token from both --token-file and BACKOUT_FLAGS_TOKEN",
    )
    assert_usage_error(serve_cli(tmp_path, "--no-token", env=env), "--no-token and a token at once")


def test_sigterm_finishes_in_flight_requests_then_exits_143(store_url: str, tmp_path: Path) -> None:
    service.set_flag(
        caller(Settings(database_url=store_url, actor="t")), "f", FlagChange(enabled=True)
    )
    env = {**_environ(), "BACKOUT_FLAGS_TOKEN": TOKEN}
    serve = start_serve(store_url, tmp_path / "serve.log", env=env)
    try:
        assert "(bearer token required)" in serve.output()
        port = int(serve.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=EVENT_TIMEOUT_S) as sock:
            # Expect: 100-continue makes the server say when the app starts reading the
            # body: from then on this request is in flight
            sock.sendall(
                head(
                    SINGLE,
                    f"Authorization: Bearer {TOKEN}",
                    "Content-Length: 2",
                    "Expect: 100-continue",
                )
            )
            assert sock.recv(100).startswith(b"HTTP/1.1 100 ")
            serve.process.send_signal(signal.SIGTERM)
            sock.sendall(b"{}")
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["value"] is True
        assert serve.process.wait(EVENT_TIMEOUT_S) == 143
    finally:
        stop_process(serve.process)
    lines = serve.output().splitlines()
    assert lines[-1] == (
        "flags serve stopped on SIGTERM: in-flight requests finished; 1 request(s) handled"
    )
    assert "Traceback" not in serve.output()


def test_no_token_on_a_public_address_is_a_loud_warning(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'b.db'}"  # the store plays no part here
    serve = start_serve(store_url, tmp_path / "serve.log", "--host", "0.0.0.0", "--no-token")
    try:
        assert "WARNING: serving flags on 0.0.0.0 with no token (--no-token)" in serve.output()
        port = int(serve.url.rsplit(":", 1)[1])
        answer = httpx.post(f"http://127.0.0.1:{port}{BULK}", timeout=EVENT_TIMEOUT_S)
        assert answer.status_code == 200
        serve.process.send_signal(signal.SIGINT)
        assert serve.process.wait(EVENT_TIMEOUT_S) == 130
    finally:
        stop_process(serve.process)
    assert serve.output().splitlines()[-1].startswith("flags serve stopped on SIGINT")


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "BACKOUT_FLAGS_TOKEN"}
