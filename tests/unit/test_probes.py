"""Verify checks and baseline sources against real servers, processes and files."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from backout.errors import ActionError
from backout.kernel.options import Context
from backout.probes import CHECKS, SOURCES
from backout.probes.http import json_path
from backout.redact import MASK, Redactor

SECRET = "probe-secret-value"


def ctx(workdir: Path, timeout: float = 5.0) -> Context:
    return Context(workdir, timeout, {"PROBE_ENV": "from-context"}, Redactor([SECRET]))


def check(kind: str, options: Any, workdir: Path = Path("."), timeout: float = 5.0) -> Any:
    probe = CHECKS.get(kind)
    return probe.check(probe.Options.model_validate(options), ctx(workdir, timeout))


def read(kind: str, options: Any, workdir: Path = Path(".")) -> str:
    probe = SOURCES.get(kind)
    return probe.read(probe.Options.model_validate(options), ctx(workdir))


def describe(section: str, kind: str, options: Any) -> str:
    probe = (CHECKS if section == "verify" else SOURCES).get(kind)
    return probe.describe(probe.Options.model_validate(options))


def test_registries() -> None:
    assert {"command", "file_hash", "http"} <= set(CHECKS.names())
    assert {"command", "file_hash", "http", "readlink"} <= set(SOURCES.names())


# --- http check -------------------------------------------------------------------------
def test_http_check_status(http_server: Any) -> None:
    url = http_server.route("/health", (200, "all ok"))
    verdict = check("http", url)
    assert verdict.passed
    assert (verdict.reason, verdict.observed) == ("status 200", 200)
    assert http_server.requests[-1].method == "GET"


def test_http_check_wrong_status(http_server: Any) -> None:
    url = http_server.route("/health", (503, "starting"))
    verdict = check("http", url)
    assert not verdict.passed
    assert (verdict.reason, verdict.observed) == ("status 503, expected 200", 503)
    assert check("http", {"url": url, "status": 503}).passed


def test_http_check_contains(http_server: Any) -> None:
    url = http_server.route("/health", (200, "release v1 healthy"))
    assert check("http", {"url": url, "contains": "v1 healthy"}).passed
    verdict = check("http", {"url": url, "contains": "v2"})
    assert not verdict.passed
    assert verdict.reason == "body does not contain 'v2'"


def test_http_check_json_field_equals(http_server: Any) -> None:
    body = {"status": "ok", "release": {"version": "1.2", "replicas": [3, 5]}}
    url = http_server.route("/info", (200, body))
    verdict = check("http", {"url": url, "json": "release.version", "equals": "1.2"})
    assert verdict.passed
    assert (verdict.reason, verdict.observed) == ("release.version = '1.2'", "1.2")
    # compared as text: a YAML number matches a JSON number
    assert check("http", {"url": url, "json": "release.replicas.1", "equals": 5}).passed
    # without `equals` the field only has to exist
    assert check("http", {"url": url, "json": "status"}).passed


@pytest.mark.parametrize(
    ("field", "equals", "text"),
    [
        ("enabled", "false", "false"),
        ("enabled", False, "false"),
        ("owner", "null", "null"),
        ("count", "3", "3"),
        ("count", 3, "3"),
    ],
)
def test_http_check_json_scalars_compare_as_json_text(
    http_server: Any, field: str, equals: object, text: str
) -> None:
    url = http_server.route("/flags", (200, {"enabled": False, "owner": None, "count": 3}))
    assert check("http", {"url": url, "json": field, "equals": equals}).passed
    # a baseline read from the same field is the same text, so the check can compare to it
    assert read("http", {"url": url, "json": field}) == text


def test_http_check_json_mismatch_reasons(http_server: Any) -> None:
    url = http_server.route("/info", (200, {"release": {"version": "1.3"}}))
    verdict = check("http", {"url": url, "json": "release.version", "equals": "1.2"})
    assert not verdict.passed
    assert verdict.reason == "release.version is '1.3', expected '1.2'"
    assert verdict.observed == "1.3"
    missing = check("http", {"url": url, "json": "release.build", "equals": "7"})
    assert not missing.passed
    assert missing.reason == "JSON field release.build not found in the body"


def test_http_check_json_on_a_non_json_body(http_server: Any) -> None:
    url = http_server.route("/text", (200, "not json"))
    verdict = check("http", {"url": url, "json": "a", "equals": "b"})
    assert (verdict.passed, verdict.reason) == (False, "JSON field a not found in the body")


def test_http_check_connection_refused_is_a_verdict(closed_port_url: str) -> None:
    verdict = check("http", closed_port_url)
    assert not verdict.passed
    assert verdict.reason.startswith(f"GET {closed_port_url}: ConnectError")


def test_http_check_sends_headers(http_server: Any) -> None:
    url = http_server.route("/h", 200)
    assert check("http", {"url": url, "headers": {"Authorization": "Bearer x"}}).passed
    assert http_server.requests[-1].headers["Authorization"] == "Bearer x"


def test_json_path() -> None:
    document = {"a": [{"b": 1}, {"b": 2}], "c": {"d": None}}
    assert json_path(document, "a.1.b") == 2
    assert json_path(document, "c.d") is None
    for missing in ("a.2.b", "x", "a.b", "c.d.e"):
        with pytest.raises(KeyError):
            json_path(document, missing)


def test_http_check_describe() -> None:
    text = describe("verify", "http", {"url": "http://x/h", "contains": "ok"})
    assert text == "GET http://x/h returns 200 and contains 'ok'"
    text = describe("verify", "http", {"url": "http://x/h", "json": "v", "equals": "1"})
    assert text == "GET http://x/h returns 200 with v = '1'"


# --- command check ----------------------------------------------------------------------
def test_command_check_exit_code(tmp_path: Path) -> None:
    assert check("command", ["true"], tmp_path).passed
    verdict = check("command", ["sh", "-c", "echo first; echo 'not ready'; exit 2"], tmp_path)
    assert not verdict.passed
    assert verdict.reason == "exit code 2, expected 0: not ready"
    assert verdict.observed == 2
    assert check("command", {"argv": ["sh", "-c", "exit 2"], "exit_code": 2}, tmp_path).passed


def test_command_check_contains(tmp_path: Path) -> None:
    argv = ["sh", "-c", 'echo "release $PROBE_ENV"']
    assert check("command", {"argv": argv, "contains": "release from-context"}, tmp_path).passed
    verdict = check("command", {"argv": argv, "contains": "v2"}, tmp_path)
    assert (verdict.passed, verdict.reason) == (False, "output does not contain 'v2'")


def test_command_check_runs_in_the_plan_folder(tmp_path: Path) -> None:
    (tmp_path / "marker").touch()
    assert check("command", ["test", "-e", "marker"], tmp_path).passed


def test_command_check_timeout(tmp_path: Path) -> None:
    verdict = check("command", ["sleep", "5"], tmp_path, timeout=0.2)
    assert (verdict.passed, verdict.reason) == (False, "timed out after 0.2s")


def test_command_check_missing_program_is_a_verdict(tmp_path: Path) -> None:
    verdict = check("command", ["./nope"], tmp_path)
    assert not verdict.passed
    assert verdict.reason.startswith("command not found")


def test_command_check_reason_is_redacted(tmp_path: Path) -> None:
    verdict = check("command", ["sh", "-c", f"echo {SECRET}; exit 1"], tmp_path)
    assert verdict.reason == f"exit code 1, expected 0: {MASK}"


# --- file_hash check --------------------------------------------------------------------
def test_file_hash_check_matches_and_detects_drift(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "app.conf"
    config.parent.mkdir()
    config.write_text("workers = 4\n")
    good = hashlib.sha256(b"workers = 4\n").hexdigest()
    verdict = check("file_hash", {"path": "etc/app.conf", "equals": good + "\n"}, tmp_path)
    assert verdict.passed
    assert verdict.reason == f"etc/app.conf matches sha256 {good[:12]}…"
    config.write_text("workers = 8\n")
    drifted = hashlib.sha256(b"workers = 8\n").hexdigest()
    verdict = check("file_hash", {"path": "etc/app.conf", "equals": good}, tmp_path)
    assert not verdict.passed
    assert verdict.reason == (
        f"etc/app.conf has drifted: sha256 {drifted[:12]}…, expected {good[:12]}…"
    )
    assert verdict.observed == drifted


def test_file_hash_check_missing_file(tmp_path: Path) -> None:
    verdict = check("file_hash", {"path": "gone.conf", "equals": "abc"}, tmp_path)
    assert not verdict.passed
    assert verdict.reason == "cannot read gone.conf: No such file or directory"


# --- sources ----------------------------------------------------------------------------
def test_readlink_source(tmp_path: Path) -> None:
    os.symlink("releases/v1", tmp_path / "current")
    assert read("readlink", "current", tmp_path) == "releases/v1"
    assert read("readlink", {"path": str(tmp_path / "current")}, tmp_path) == "releases/v1"


def test_readlink_source_errors(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ActionError, match="cannot read symlink plain: Invalid argument"):
        read("readlink", "plain", tmp_path)
    with pytest.raises(ActionError, match="cannot read symlink gone: No such file"):
        read("readlink", "gone", tmp_path)


def test_file_hash_source(tmp_path: Path) -> None:
    big = os.urandom(200_000)  # more than one read block
    (tmp_path / "blob").write_bytes(big)
    assert read("file_hash", "blob", tmp_path) == hashlib.sha256(big).hexdigest()
    with pytest.raises(ActionError, match="cannot hash nope"):
        read("file_hash", "nope", tmp_path)


def test_command_source(tmp_path: Path) -> None:
    assert read("command", [sys.executable, "-c", "print('  v1.2.3  ')"], tmp_path) == "v1.2.3"
    with pytest.raises(ActionError, match=r"exit code 3"):
        read("command", ["sh", "-c", "echo boom; exit 3"], tmp_path)


def test_http_source(http_server: Any) -> None:
    text_url = http_server.route("/version", (200, "v1.2.3\n"))
    json_url = http_server.route("/info", (200, {"release": {"sha": "abc123"}}))
    assert read("http", text_url) == "v1.2.3"
    assert read("http", {"url": json_url, "json": "release.sha"}) == "abc123"
    with pytest.raises(ActionError, match=r"no JSON field release\.nope"):
        read("http", {"url": json_url, "json": "release.nope"})


def test_http_source_errors(http_server: Any, closed_port_url: str) -> None:
    url = http_server.route("/broken", (500, "oops"))
    with pytest.raises(ActionError, match="status 500"):
        read("http", url)
    with pytest.raises(ActionError, match="ConnectError"):
        read("http", closed_port_url)


def test_source_descriptions() -> None:
    assert describe("baseline", "readlink", "current") == "target of symlink current"
    assert describe("baseline", "file_hash", "a.conf") == "sha256 of a.conf"
    assert describe("baseline", "command", ["git", "rev-parse", "HEAD"]) == (
        "output of `git rev-parse HEAD`"
    )
    assert describe("baseline", "http", {"url": "http://x", "json": "v"}) == "GET http://x field v"
