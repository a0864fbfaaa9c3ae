"""``--listen HOST:PORT``: checking the address the webhook listener binds to, and refusing
it without a credential (on loopback too: any local process could reach a loopback port).

The result, a ``ListenAddress``, is a str carrying the host, the port and the credential, so
it passes unchanged through the verbs' ``listen`` argument.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping

from backout.errors import UsageError
from backout.triggers.listener_auth import Credential, load_credential

_ADDRESS = re.compile(
    r"\[(?P<v6>[0-9A-Fa-f:.%\w]+)\]:(?P<p6>[0-9]+)|(?P<host>[^\s:\[\]]+):(?P<port>[0-9]+)"
)
_CREDENTIAL_HINT = (
    "put a random token in a file (`openssl rand -hex 32 > token; chmod 600 token`), pass "
    "--listen-token-file token (or set BACKOUT_LISTEN_TOKEN) and give Alertmanager the same "
    "token in its receiver's http_config (docs/triggers.md#alertmanager)"
)


class ListenAddress(str):
    """``HOST:PORT`` as the user wrote it, carrying what the listener needs to bind and to
    authenticate. A str, so it passes unchanged through the verbs' ``listen`` argument."""

    host: str
    port: int
    credential: Credential | None  # None: what arrives is signed (checked by its receiver)

    def __new__(
        cls, text: str, host: str, port: int, credential: Credential | None
    ) -> ListenAddress:
        address = super().__new__(cls, text)
        address.host, address.port, address.credential = host, port, credential
        return address


def listen_address(
    text: str,
    token_file: str | None = None,
    user: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ListenAddress:
    """Check ``--listen HOST:PORT`` and its credential; UsageError (exit 2) says what is wrong."""
    host, port = _host_port(text)
    credential = load_credential(token_file, user, os.environ if environ is None else environ)
    if credential is None:
        raise UsageError(_no_credential(text, host), hint=_CREDENTIAL_HINT)
    return ListenAddress(text, host, port, credential)


def signed_address(text: str) -> ListenAddress:
    """Check ``--listen HOST:PORT`` for a receiver whose requests carry a signature over
    their body instead of a credential (a PagerDuty webhook): the receiver checks it."""
    host, port = _host_port(text)
    return ListenAddress(text, host, port, None)


def _host_port(text: str) -> tuple[str, int]:
    match = _ADDRESS.fullmatch(text.strip())
    if not match:
        raise UsageError(
            f"--listen {text!r} is not HOST:PORT",
            hint="e.g. --listen 127.0.0.1:9095 ([::1]:9095 for IPv6)",
        )
    host = match["v6"] or match["host"]
    digits = match["p6"] or match["port"]
    if len(digits) > 5 or not 1 <= int(digits) <= 65535:
        raise UsageError(
            f"--listen {text!r}: port {digits} is out of range",
            hint="a port is a number from 1 to 65535, e.g. 127.0.0.1:9095",
        )
    return host, int(digits)


def _no_credential(text: str, host: str) -> str:
    if _is_loopback(host):
        return (
            f"--listen {text} needs a credential: without one, any local process could POST "
            "an alert and back the service out"
        )
    return (
        f"refusing to listen on {text} without a credential: it is not a loopback address, "
        "so anyone who can reach it could POST an alert and back the service out"
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
