"""Who a request is, and what it may do.

``Authorization: Bearer bo_…`` names an API token (``backout token create``); the request
then acts as the token's actor with its role. No token, or one that is unknown, revoked,
expired or malformed, is a 401 (one message for each). A role that does not grant what an
endpoint needs is a 403 naming the role that would, and an ``api.denied`` audit record.

The dashboard's sign-in (:mod:`.web`) keeps the token in the HttpOnly cookie ``COOKIE``;
a GET (or HEAD) without an Authorization header presents that cookie instead, so a page's
script reads the API (its live events) as the person signed in. Only reads take the
cookie: a request that changes anything must carry the header, which a page of another
site cannot make a browser send.

An open server (``--open``, loopback only) lets a request without a token in as the actor
``anonymous`` with the role viewer: it reads, and is refused everything else. A request
that does carry a token is still checked, and acts as the token says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from fastapi import Request

from backout.commands.caller import Caller
from backout.commands.tokens import authenticate
from backout.errors import Forbidden, Unauthenticated
from backout.kernel.roles import Permission, Principal, Role, allows
from backout.store import audit

ANONYMOUS = "anonymous"
COOKIE = "backout_token"
_READS = frozenset({"GET", "HEAD"})
DENIED = "api.denied"


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
        if not principal.may(permission):
            gate.deny(request, principal, permission)
        return gate.caller_for(principal)

    return dependency
