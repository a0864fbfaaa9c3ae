"""The webhook listener's credential: where its secret comes from, that it is strong enough,
and whether a request's ``Authorization`` header carries it.

The secret is a bearer token or, with a user name, the password of HTTP basic auth. It comes
from ``--listen-token-file`` (else ``BACKOUT_LISTEN_TOKEN``); the user from ``--listen-user``
(else ``BACKOUT_LISTEN_USER``). Comparisons take constant time and never leak its length.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from backout.errors import UsageError

MIN_SECRET_CHARS = 16
TOKEN_ENV = "BACKOUT_LISTEN_TOKEN"  # noqa: S105 (the variable's name, not a token)
USER_ENV = "BACKOUT_LISTEN_USER"
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Credential:
    """The secret Alertmanager must send: a bearer token, or, with ``user``, the password of
    HTTP basic auth. ``source`` says where it came from (never the secret itself)."""

    secret: str = field(repr=False)
    source: str
    user: str | None = None

    @property
    def scheme(self) -> str:
        return "Basic" if self.user else "Bearer"

    @property
    def challenge(self) -> str:
        return f'{self.scheme} realm="backout"'

    def refusal(self, header: str | None) -> str:
        """Why an ``Authorization`` header does not authenticate; '' when it does."""
        if not header:
            return "no Authorization header"
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != self.scheme.lower():
            return f"{scheme[:20]!r} credentials where {self.scheme} was expected"
        if self.user is None:
            return "" if _same(value.strip().encode(), self.secret.encode()) else "wrong token"
        return "" if self._basic(value.strip()) else "wrong user or password"

    def _basic(self, value: str) -> bool:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        # both compared, always: the time taken must not tell which of the two was wrong
        same_user = _same(user, (self.user or "").encode())
        same_password = _same(password, self.secret.encode())
        return bool(colon) and same_user and same_password


def _same(given: bytes, expected: bytes) -> bool:
    """Constant time, and hashed first so that not even the secret's length leaks."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


def load_credential(
    token_file: str | None, user: str | None, environ: Mapping[str, str]
) -> Credential | None:
    """The listener's credential: ``--listen-token-file`` (else ``BACKOUT_LISTEN_TOKEN``), sent
    as a bearer token, or as the basic-auth password of ``--listen-user`` (else
    ``BACKOUT_LISTEN_USER``) when one is given. None if no secret is configured."""
    if token_file:
        secret, source = _read_secret(token_file), f"--listen-token-file {token_file}"
    elif environ.get(TOKEN_ENV):
        secret, source = environ[TOKEN_ENV].strip(), TOKEN_ENV
    else:
        return None
    _check_secret(secret, source)
    name = user if user is not None else environ.get(USER_ENV) or None
    if name is not None:
        _check_user(name)
    return Credential(secret, source, name)


def _read_secret(path: str) -> str:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(4097)
    except OSError as exc:
        raise UsageError(
            f"cannot read --listen-token-file {path}: {exc.strerror or exc}",
            hint="give the path of a file holding the listener's token",
        ) from exc
    if len(data) > 4096:
        raise UsageError(
            f"--listen-token-file {path} is over 4 KiB: not a token",
            hint="the file holds only the token, e.g. `openssl rand -hex 32 > token`",
        )
    try:
        # like Alertmanager's credentials_file: surrounding whitespace is not part of it
        return data.decode().strip()
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"--listen-token-file {path} is not text",
            hint="the file holds only the token, e.g. `openssl rand -hex 32 > token`",
        ) from exc


def _check_secret(secret: str, source: str) -> None:
    if not _VISIBLE_ASCII.fullmatch(secret):
        raise UsageError(
            f"the listener token from {source} must be visible ASCII characters, without spaces",
            hint="e.g. `openssl rand -hex 32`",
        )
    if len(secret) < MIN_SECRET_CHARS:
        raise UsageError(
            f"the listener token from {source} has {len(secret)} characters; "
            f"at least {MIN_SECRET_CHARS} are needed",
            hint="a guessable token lets anyone back the service out; `openssl rand -hex 32`",
        )


def _check_user(user: str) -> None:
    if not _VISIBLE_ASCII.fullmatch(user) or ":" in user:
        raise UsageError(
            f"--listen-user {user!r}: a basic-auth user name is visible ASCII without ':' "
            "or spaces",
            hint="e.g. --listen-user alertmanager",
        )
