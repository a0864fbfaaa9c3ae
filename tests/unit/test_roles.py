"""Roles and permissions (backout.kernel.roles), the error a refused token raises, and the
lifetime `backout token create --expires` takes. No store: tests/integration/test_tokens.py
has the tokens themselves."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from backout.cli.tokens import Lifetime
from backout.errors import BackoutError, Forbidden, Unauthenticated, UsageError
from backout.kernel.roles import (
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    Role,
    allows,
    role_of,
)

READ, OPERATE, APPROVE, ADMIN = Permission


def test_each_role_grants_what_the_docs_table_says() -> None:
    assert dict(ROLE_PERMISSIONS) == {
        Role.VIEWER: {READ},
        Role.OPERATOR: {READ, OPERATE},
        Role.APPROVER: {READ, APPROVE},
        Role.ADMIN: {READ, OPERATE, APPROVE, ADMIN},
    }
    assert [r.value for r in Role] == ["viewer", "operator", "approver", "admin"]
    assert [p.value for p in Permission] == ["read", "operate", "approve", "admin"]


@pytest.mark.parametrize(
    ("role", "granted"),
    [
        (Role.VIEWER, "r"),
        (Role.OPERATOR, "ro"),
        (Role.APPROVER, "ra"),
        (Role.ADMIN, "roaA"),
    ],
)
def test_allows(role: Role, granted: str) -> None:
    letters = {READ: "r", OPERATE: "o", APPROVE: "a", ADMIN: "A"}
    for permission in Permission:
        assert allows(role, permission) is (letters[permission] in granted), permission


def test_operating_and_approving_are_apart() -> None:
    """Only an admin holds both: a pipeline with an operator token never approves itself."""
    both = [r for r in Role if allows(r, OPERATE) and allows(r, APPROVE)]
    assert both == [Role.ADMIN]


def test_role_of_reads_a_name_and_refuses_others_with_the_known_ones() -> None:
    assert role_of("Operator ") is Role.OPERATOR
    assert role_of(Role.ADMIN) is Role.ADMIN
    with pytest.raises(UsageError) as refused:
        role_of("root")
    assert refused.value.exit_code == 2
    assert str(refused.value) == (
        "unknown role 'root'\nhint: use one of: viewer, operator, approver, admin"
    )


def test_a_principal_requires_a_permission_its_role_grants() -> None:
    ci = Principal("ci-deploy", Role.OPERATOR, token_id=4)
    assert ci.may(OPERATE)
    assert not ci.may(APPROVE)
    ci.require(READ)
    ci.require(OPERATE)
    with pytest.raises(Forbidden) as refused:
        ci.require(APPROVE)
    assert (refused.value.exit_code, refused.value.http_status) == (2, 403)
    assert str(refused.value) == (
        "ci-deploy (role operator) may not approve\n"
        "hint: this needs a token with the role approver or admin"
    )
    assert Principal("cli", Role.ADMIN).token_id is None


def test_unauthenticated_is_a_401_with_its_case_kept_apart() -> None:
    error = Unauthenticated("token refused", reason="expired", hint="ask an admin")
    assert isinstance(error, BackoutError)
    assert not isinstance(error, UsageError)  # not a 400: the request was well formed
    assert (error.exit_code, error.http_status) == (2, 401)
    assert error.reason == "expired"
    assert "expired" not in str(error)  # the case is for the log, never the message
    assert str(error) == "token refused\nhint: ask an admin"


def test_the_roles_load_no_store_or_web_library() -> None:
    probe = (
        "import sys, backout.kernel.roles; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'click', 'rich', 'httpx', 'pydantic')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 90 * 86400.0),
        ("1.5d", 1.5 * 86400),
        ("12h", 12 * 3600.0),
        ("45m", 2700.0),
        ("30", 30.0),
        ("never", None),
        ("NEVER", None),
    ],
)
def test_a_lifetime_is_days_a_duration_or_never(text: str, seconds: float | None) -> None:
    assert Lifetime().convert(text, None, None) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3y", "'3y' is not a lifetime; expected e.g. 90d, 12h, 30m or never"),
        ("soon", "'soon' is not a lifetime"),
        ("0d", "'0d': a token must live more than 0s"),
        ("0", "'0': a token must live more than 0s"),
        ("20000d", "less than 30 years"),
    ],
)
def test_a_bad_lifetime_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message.replace("(", r"\(")):
        Lifetime().convert(text, None, None)
