"""Who may do what: the roles an API token carries and the permissions each role grants.

A role is a fixed set of permissions, checked with :func:`allows`; a request's identity
is a :class:`Principal` (the actor it acts as, its role, the token that proved it). The
table is here, below every layer, so the server's routes, the CLI and the docs all read
the same one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from backout.errors import Forbidden, UsageError


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # runs, journals, changes, audit trail, reports
    OPERATE = "operate"  # start, resume, trigger, abandon, ack a run
    APPROVE = "approve"  # approve changes and deploy checkpoints
    ADMIN = "admin"  # tokens, policy


# approving and operating are kept apart: whoever approves a change is not whoever runs it
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.VIEWER: frozenset({Permission.READ}),
        Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE}),
        Role.APPROVER: frozenset({Permission.READ, Permission.APPROVE}),
        Role.ADMIN: frozenset(Permission),
    }
)


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def role_of(text: str) -> Role:
    """The role named ``text``; an unknown name is a UsageError listing the known ones."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        known = ", ".join(Role)
        raise UsageError(f"unknown role {text!r}", hint=f"use one of: {known}") from None


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the actor the journal and audit trail name, the role that
    bounds what it may do, and the token that proved it (None: not a token, e.g. the CLI)."""

    actor: str
    role: Role
    token_id: int | None = None

    def may(self, permission: Permission) -> bool:
        return allows(self.role, permission)

    def require(self, permission: Permission) -> None:
        """Refuse with :class:`~backout.errors.Forbidden` unless the role grants it."""
        if not self.may(permission):
            granted = [role.value for role in Role if allows(role, permission)]
            raise Forbidden(
                f"{self.actor} (role {self.role}) may not {permission}",
                hint=f"this needs a token with the role {' or '.join(granted)}",
            )
