"""``sql_migration:`` — a pair of SQL files, ``up`` and ``down``, each the other's reverse.

A step runs one file (``direction``, default ``up``) statement by statement in **one
transaction** (PostgreSQL runs DDL in transactions; so does SQLite once backout opens the
transaction itself), so a failing statement leaves the database as it was. It records
which file it ran and the file's sha256; its reverse runs the other file the same way.
``transaction: false`` runs each statement on its own, for what PostgreSQL refuses inside
a transaction (``CREATE INDEX CONCURRENTLY``).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context, resolve
from backout.probes.sqldb import Database, QueryTimeout, raw_connection, shown

Direction = Literal["up", "down"]


class SqlMigrationOptions(Database):
    up: str = Field(min_length=1, description="SQL file that applies the change (relative path).")
    down: str = Field(min_length=1, description="SQL file that reverses it (relative path).")
    direction: Direction = Field("up", description="Which file this step runs: up or down.")
    transaction: bool = Field(
        True, description="Run the file in one transaction (false: each statement on its own)."
    )


@dataclass(frozen=True)
class Statement:
    line: int  # where it starts in its file, 1-based
    sql: str


# --- splitting ---------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|(\$[A-Za-z_0-9]*\$).*?\1|;""",
    re.DOTALL,
)


def split_postgres(script: str) -> list[Statement]:
    """Statements at top-level semicolons; quotes, ``$tag$`` bodies and comments kept
    whole, so a function body's semicolons do not split it."""
    statements: list[Statement] = []
    start = 0
    for match in _TOKEN.finditer(script):
        if match.group(0) == ";":
            _add(statements, script, start, match.end())
            start = match.end()
    _add(statements, script, start, len(script))
    return statements


def split_sqlite(script: str) -> list[Statement]:
    """Statements as SQLite itself sees them end (``sqlite3.complete_statement``), so a
    trigger's ``BEGIN … END;`` stays whole."""
    statements: list[Statement] = []
    start, line_start = 0, 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[line_start : index + 1]):
            _add(statements, script, start, index + 1)
            start = line_start = index + 1
    _add(statements, script, start, len(script))
    return statements


def _add(statements: list[Statement], script: str, start: int, end: int) -> None:
    chunk = script[start:end]
    body = _TOKEN.sub(lambda m: "" if m.group(0).startswith(("--", "/*")) else m.group(0), chunk)
    if body.strip().strip(";").strip():
        leading = len(chunk) - len(chunk.lstrip())
        line = script.count("\n", 0, start + leading) + 1
        statements.append(Statement(line, chunk.strip()))


# --- running -----------------------------------------------------------------------------------
def run_script(options: Database, ctx: Context, path: Path, transaction: bool) -> int:
    """Run the file's statements; how many ran. Raises ActionError naming the statement
    that failed (its line in the file) and the database's own reason."""
    try:
        script = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror}") from exc
    deadline = time.monotonic() + ctx.timeout
    with raw_connection(options, ctx) as (dialect, connection):
        if dialect not in ("postgresql", "sqlite"):
            raise ActionError(f"sql_migration runs on PostgreSQL and SQLite, not {dialect}")
        statements = split_sqlite(script) if dialect == "sqlite" else split_postgres(script)
        cursor = connection.cursor()
        if transaction:
            cursor.execute("BEGIN")
        try:
            for statement in statements:
                _execute(cursor, dialect, statement, path, deadline, ctx)
        except BaseException:
            if transaction:
                with contextlib.suppress(Exception):  # SQLite may have rolled back itself
                    cursor.execute("ROLLBACK")
            raise
        if transaction:
            cursor.execute("COMMIT")
    return len(statements)


def _execute(
    cursor: Any, dialect: str, statement: Statement, path: Path, deadline: float, ctx: Context
) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise QueryTimeout(f"timed out after {ctx.timeout:g}s")
    if dialect == "postgresql":
        cursor.execute(f"SET statement_timeout = {max(int(left * 1000), 1)}")
    try:
        cursor.execute(statement.sql)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "statement timeout" in reason or reason == "interrupted":
            reason = f"timed out after {ctx.timeout:g}s (the statement was cancelled)"
        raise ActionError(ctx.redact(f"{path.name}:{statement.line}: {reason}")) from exc


def sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror}") from exc


class SqlMigrationAction(Action):
    kind = "sql_migration"
    Options = SqlMigrationOptions

    def execute(self, options: SqlMigrationOptions, ctx: Context) -> Outcome:
        return self._apply(options, ctx, options.direction)

    def describe(self, options: SqlMigrationOptions) -> str:
        file = options.up if options.direction == "up" else options.down
        return f"apply {file} to {shown(options)} (reverse: the other file)"

    def reverse(self, options: SqlMigrationOptions, done: dict[str, Any], ctx: Context) -> Outcome:
        applied = done.get("applied")
        if applied not in ("up", "down"):
            return Outcome(False, "the step recorded no file it applied; not guessing")
        return self._apply(options, ctx, "down" if applied == "up" else "up")

    def _apply(self, options: SqlMigrationOptions, ctx: Context, direction: Direction) -> Outcome:
        name = options.up if direction == "up" else options.down
        path = resolve(ctx.workdir, name)
        try:
            digest = sha256(path)
            count = run_script(options, ctx, path, options.transaction)
        except ActionError as exc:
            undone = " (rolled back)" if options.transaction else ""
            return Outcome(False, f"{exc.message}{undone}")
        return Outcome(
            True,
            f"applied {name}: {count} statement(s)",
            detail={"applied": direction, "file": name, "sha256": digest, "statements": count},
        )
