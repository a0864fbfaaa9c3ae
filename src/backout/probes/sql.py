"""SQL probes: the ``sql`` baseline source (one value from a query), the ``sql`` check (a
value equal to or within a bound of an expected one, or an invariant query that must
return no rows), and the ``alembic`` source (the revision a database is at)."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import Field, model_validator

from backout.errors import ActionError
from backout.kernel.options import Context
from backout.probes.base import Check, Source, Verdict
from backout.probes.sqldb import Database, connect, one_value, run_sql, scalar_text, shown

SHOWN_ROWS = 5
_TOLERANCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


class SqlSourceOptions(Database):
    query: str = Field(min_length=1, description="A query returning one row; its first column.")


class SqlCheckOptions(Database):
    query: str = Field(min_length=1, description="The query to run.")
    equals: str | None = Field(
        None,
        description="Expected value of the one row's first column (as text), e.g. "
        "`{{ baseline.orders }}`.",
    )
    tolerance: str | None = Field(
        None, description="With `equals`: how far a number may be from it, `5` or `0.5%`."
    )
    min: float | None = Field(None, description="The value must be at least this.")
    max: float | None = Field(None, description="The value must be at most this.")
    no_rows: bool = Field(
        False, description="An invariant: the query must return no rows (orphans, nulls)."
    )

    @model_validator(mode="after")
    def _one_expectation(self) -> SqlCheckOptions:
        bounds = self.equals is not None or self.min is not None or self.max is not None
        if self.no_rows == bounds:
            raise ValueError("give `no_rows: true`, or `equals` and/or `min`/`max`")
        if self.tolerance is not None:
            if self.equals is None:
                raise ValueError("`tolerance` needs `equals`")
            if not _TOLERANCE.match(self.tolerance):
                raise ValueError(f"tolerance {self.tolerance!r}: write a number, or one with %")
        return self


class SqlSource(Source):
    kind = "sql"
    Options = SqlSourceOptions

    def read(self, options: SqlSourceOptions, ctx: Context) -> str:
        with connect(options, ctx) as connection:
            return scalar_text(one_value(connection, options.query))

    def describe(self, options: SqlSourceOptions) -> str:
        return f"`{_short(options.query)}` in {shown(options)}"


class SqlCheck(Check):
    kind = "sql"
    Options = SqlCheckOptions

    def check(self, options: SqlCheckOptions, ctx: Context) -> Verdict:
        try:
            with connect(options, ctx) as connection:
                if options.no_rows:
                    result = run_sql(connection, options.query)
                    return _no_rows(list(result.keys()), list(result.fetchmany(SHOWN_ROWS + 1)))
                value = one_value(connection, options.query)
        except ActionError as exc:
            return Verdict(False, ctx.redact(exc.message))
        return _bounded(options, value)

    def describe(self, options: SqlCheckOptions) -> str:
        query = f"`{_short(options.query)}`"
        if options.no_rows:
            return f"{query} returns no rows"
        parts = [f"equals {options.equals}"] if options.equals is not None else []
        parts += [f"± {options.tolerance}"] if options.tolerance else []
        parts += [f"≥ {options.min:g}"] if options.min is not None else []
        parts += [f"≤ {options.max:g}"] if options.max is not None else []
        return f"{query} {' '.join(parts)}"


def _no_rows(columns: list[str], rows: list[Any]) -> Verdict:
    if not rows:
        return Verdict(True, "no rows", 0)
    shown_rows = [
        "(" + ", ".join(f"{c}={scalar_text(v)}" for c, v in zip(columns, row, strict=False)) + ")"
        for row in rows[:SHOWN_ROWS]
    ]
    more = " and more" if len(rows) > SHOWN_ROWS else ""
    first = f"first {SHOWN_ROWS}" if len(rows) > SHOWN_ROWS else f"{len(rows)} row(s)"
    return Verdict(False, f"expected no rows; {first}{more}: {'; '.join(shown_rows)}", len(rows))


def _bounded(options: SqlCheckOptions, value: Any) -> Verdict:
    observed = scalar_text(value)
    number = _number(value)
    if options.equals is not None and not _equal(options, value, number):
        expected = options.equals.strip()
        off = f" (allowed ± {options.tolerance})" if options.tolerance else ""
        return Verdict(False, f"value {observed}, expected {expected}{off}", observed)
    low, high = options.min, options.max
    if low is not None and (number is None or number < low):
        return Verdict(False, f"value {observed}, expected at least {low:g}", observed)
    if high is not None and (number is None or number > high):
        return Verdict(False, f"value {observed}, expected at most {high:g}", observed)
    return Verdict(True, f"value {observed}", observed)


def _equal(options: SqlCheckOptions, value: Any, number: float | None) -> bool:
    expected = (options.equals or "").strip()
    if scalar_text(value) == expected:
        return True
    target = _number(expected)
    if number is None or target is None:
        return False
    if options.tolerance is None:
        return number == target
    match = _TOLERANCE.match(options.tolerance)
    assert match is not None  # validated with the options
    allowed = float(match.group(1)) * (abs(target) / 100 if match.group(2) else 1)
    return abs(number - target) <= allowed


def _number(value: Any) -> float | None:
    """A number from a query value or a text (``20000``, ``12.50``); None if it is none."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def _short(query: str) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= 80 else flat[:79] + "…"


# --- alembic ---------------------------------------------------------------------------------
class AlembicSourceOptions(Database):
    version_table: str = Field(
        "alembic_version", description="Alembic's version table (its `version_table`)."
    )
    version_table_schema: str | None = Field(None, description="Its schema, if not the default.")


class AlembicSource(Source):
    """The revision the database is at, as ``alembic current`` would say: ``base`` for a
    database alembic never touched (no table, or an empty one)."""

    kind = "alembic"
    Options = AlembicSourceOptions

    def read(self, options: AlembicSourceOptions, ctx: Context) -> str:
        from sqlalchemy import inspect

        with connect(options, ctx) as connection:
            preparer = connection.dialect.identifier_preparer
            table = preparer.quote(options.version_table)
            if options.version_table_schema:
                table = f"{preparer.quote(options.version_table_schema)}.{table}"
            if not inspect(connection).has_table(
                options.version_table, options.version_table_schema
            ):
                return "base"
            query = f"SELECT version_num FROM {table}"  # noqa: S608 (quoted identifiers)
            heads = [r[0] for r in run_sql(connection, query)]
        if len(heads) > 1:
            raise ActionError(
                f"the database is at {len(heads)} alembic heads ({', '.join(sorted(heads))})",
                hint="merge the branches (`alembic merge`); a backout downgrades to one revision",
            )
        return heads[0] if heads else "base"

    def describe(self, options: AlembicSourceOptions) -> str:
        return f"alembic revision of {shown(options)}"
