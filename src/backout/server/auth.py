"""Who a request is, and what it may do.

``Authorization: Bearer bo_…`` names an API token (``backout token create``); the request
then acts as the token's actor with its role. No token, or one that is unknown, revoked,
expired or malformed, is a 401 (one message for each). A role that does not grant what an
endpoint needs is a 403 naming the role that would, and an ``api.denied`` audit record.

The dashboard's sign-in (:mod:`.web`) keeps the token in the HttpOnly cookie ``COOKIE``;
a GET (or HEAD) without an Authorization header presents that cookie instead, so a page's
script reads the API (its live events) as the person signed in. The API's reads take the
cookie: a request to the API that changes anything must carry the header, which a page of
another site cannot make a browser send. The dashboard's own forms (:mod:`.web_actions`)
post with the cookie and a CSRF token (:meth:`Gate.csrf_for`), an HMAC keyed with the
cookie's token itself: a page of another site cannot compute it (the cookie is HttpOnly,
the HMAC one-way), and every server behind a load balancer checks it alike, across
restarts; a form without it, or with another, is refused before anything is done
(:meth:`Gate.form_principal`).

An open server (``--open``, loopback only) lets a request without a token in as the actor
``anonymous`` with the role viewer: it reads, and is refused everything else. A request
that does carry a token is still checked, and acts as the token says.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from fastapi import Request

from backout.commands.caller import Caller
from backout.commands.tokens import authenticate
from backout.errors import Forbidden, Unauthenticated
from backout.kernel.roles import Permission, Principal, Role, allows
from backout.server.access import ACTOR_KEY
from backout.store import audit

ANONYMOUS = "anonymous"
COOKIE = "backout_token"
_READS = frozenset({"GET", "HEAD"})
DENIED = "api.denied"
CSRF_FIELD = "csrf"
CSRF_PURPOSE = b"backout dashboard form"  # what the sign-in's token signs for a form
log = logging.getLogger("backout.server")


@dataclass(frozen=True)
class Gate:
    """Tells the principal of each request, over the server's base caller."""

    caller: Caller
    open_access: bool

    def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is None and request.method in _READS and request.cookies.get(COOKIE):
            return authenticate(self.caller, request.cookies[COOKIE])
        if header is None and self.open_access:
            return Principal(ANONYMOUS, Role.VIEWER)
        scheme, _, secret = (header or "").strip().partition(" ")
        if header is not None and scheme.lower() != "bearer":
            raise Unauthenticated(
                "the Authorization header must be: Bearer <token>",
                reason="malformed",
                hint="make a token with `backout token create --role R --actor NAME`",
            )
        return authenticate(self.caller, secret)

    def csrf_for(self, request: Request) -> str:
        """The CSRF token the dashboard's forms carry for this request's sign-in: an HMAC of
        the cookie's token (of the bearer token, for a page read with the header); empty
        without either (an open server's anonymous viewer, who may do nothing)."""
        header = request.headers.get("authorization")
        secret = header.strip().partition(" ")[2] if header else request.cookies.get(COOKIE, "")
        if not secret:
            return ""
        return hmac.new(secret.encode(), CSRF_PURPOSE, hashlib.sha256).hexdigest()

    def form_principal(self, request: Request, csrf: str | None) -> Principal:
        """Who posts a dashboard form. The cookie counts only with the form's CSRF token
        (a page of another site can make a browser post, but cannot read the token); a
        bearer header needs none (no other site's page can send one); without either, as
        :meth:`principal` says (an open server's anonymous viewer, or 401)."""
        cookie = request.cookies.get(COOKIE)
        if request.headers.get("authorization") is not None or not cookie:
            return self.principal(request)
        principal = authenticate(self.caller, cookie)
        expected = self.csrf_for(request).encode()
        if not hmac.compare_digest((csrf or "").encode(), expected):
            log.warning(
                "refused %s %s: the form's CSRF token is %s",
                request.method,
                request.url.path,
                "missing" if not csrf else "wrong",
            )
            raise Forbidden(
                "the form did not come from this dashboard's page, or the page is out of date",
                hint="reload the page and submit the form again",
            )
        return principal

    def caller_for(self, principal: Principal) -> Caller:
        """The caller a verb takes for this request: the server's store, the token's actor."""
        return replace(self.caller, actor=principal.actor)

    def deny(self, request: Request, principal: Principal, permission: Permission) -> None:
        """Audit the refusal, then refuse with 403 naming the role that would do."""
        details = {
            "method": request.method,
            "path": request.url.path,
            "permission": permission.value,
            "role": principal.role.value,
            "token_id": principal.token_id,
        }
        with self.caller.store.session() as session:
            audit.append(session, principal.actor, DENIED, f"api:{request.url.path}", details)
        granted = [role.value for role in Role if allows(role, permission)]
        raise Forbidden(
            f"{principal.actor} (role {principal.role}) may not {permission}: "
            f"{request.method} {request.url.path} needs the role {' or '.join(granted)}",
            hint=f"use a token with the role {' or '.join(granted)} "
            "(`backout token create --role ROLE --actor NAME`)",
        )


def needs(gate: Gate, permission: Permission) -> Callable[[Request], Caller]:
    """A FastAPI dependency: the request's caller when its role grants ``permission``."""

    def dependency(request: Request) -> Caller:
        principal = gate.principal(request)
        request.scope.setdefault("state", {})[ACTOR_KEY] = principal.actor  # the access log's
        if not principal.may(permission):
            gate.deny(request, principal, permission)
        return gate.caller_for(principal)

    return dependency
