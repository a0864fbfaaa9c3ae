"""Data fingerprints: per table, the row count and an order-independent checksum of chosen
columns, computed in the database (no row leaves it), as a ``fingerprint`` baseline source
and a ``fingerprint`` check that says which table and which columns differ.

The method. Every row is hashed over an unambiguous text of its chosen values, twice with
two seeds; the table's checksum is the sum, modulo 2^64, of each seed's 64-bit hashes:
128 bits in all. A sum keeps duplicates (two equal rows do not cancel, as they would under
XOR) and does not depend on row order; two different tables give the same checksum only
if their hash differences happen to add up to zero for both seeds, about 2^-128 for
changes not crafted against the hash. Alongside it, each column gets a 64-bit checksum of
its value paired with the row's primary key (the value alone when the table has none), so
a failing check names the columns that changed, also when values only moved between rows.

* PostgreSQL: ``hashtextextended(ROW(c1, c2, ...)::text, seed)`` — the row constructor's
  text quotes values and tells NULL from the empty string; the seeded 64-bit hash is the
  one hash partitioning uses — added with ``sum`` (exact, as numeric). Compare
  fingerprints taken on the same server.
* SQLite: on the connection, backout registers a deterministic function
  ``backout_hash(seed, v1, v2, ...)`` (the first 64 bits of MD5 over the seed and the
  values as JSON, each tagged with its storage class) and an aggregate ``backout_sum64``
  (SQLite's own ``sum`` raises on overflow); SQLite evaluates them in the query, in
  backout's process, without copying the table.

Other dialects are refused with a clear error (use a ``sql`` check there).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from backout.errors import ActionError
from backout.kernel.options import Context
from backout.probes.base import Check, Source, Verdict
from backout.probes.sqldb import Database, connect, run_sql, shown

if TYPE_CHECKING:
    from sqlalchemy import Connection

METHOD = "hash-sum128"
MASK64 = (1 << 64) - 1
ALL = "*"

Tables = dict[str, list[str] | str]


def _tables(value: Any) -> Any:
    """``[orders, customers]`` is ``{orders: "*", customers: "*"}``."""
    if isinstance(value, list):
        return {str(name): ALL for name in value}
    return value


def _check_tables(value: Tables) -> Tables:
    for table, columns in value.items():
        if isinstance(columns, str) and columns != ALL:
            raise ValueError(f"{table}: give a list of columns, or {ALL!r} for all of them")
        if isinstance(columns, list) and not columns:
            raise ValueError(f"{table}: name at least one column, or {ALL!r} for all of them")
    return value


class FingerprintOptions(Database):
    tables: Tables = Field(
        min_length=1,
        description="Tables and the columns to checksum: {orders: [id, status], customers: "
        "'*'}, or a list of tables (all columns).",
    )

    _shorthand = field_validator("tables", mode="before")(_tables)
    _valid = field_validator("tables")(_check_tables)


class FingerprintCheckOptions(Database):
    equals: str = Field(
        min_length=1, description="The baseline's fingerprint: `{{ baseline.NAME }}`."
    )
    tables: Tables | None = Field(
        None, description="Only these tables (and columns) of the baseline; default: all."
    )

    _shorthand = field_validator("tables", mode="before")(_tables)
    _valid = field_validator("tables")(_check_tables)


# --- computing -------------------------------------------------------------------------------
def fingerprint(connection: Connection, tables: Tables) -> dict[str, Any]:
    """``{table: {rows, columns, key, checksum, by_column}}`` for each table."""
    name = connection.dialect.name
    if name not in ("postgresql", "sqlite"):
        raise ActionError(
            f"fingerprints are computed on PostgreSQL and SQLite, not {name}",
            hint="use `sql` checks (a count, a sum) on this database",
        )
    if name == "sqlite":
        _register_sqlite(connection)
    return {table: _table(connection, table, columns) for table, columns in tables.items()}


def _table(connection: Connection, table: str, wanted: list[str] | str) -> dict[str, Any]:
    from sqlalchemy import inspect
    from sqlalchemy.exc import NoSuchTableError

    schema, _, bare = table.rpartition(".")
    inspector = inspect(connection)
    try:
        existing = [c["name"] for c in inspector.get_columns(bare, schema or None)]
        key = list(inspector.get_pk_constraint(bare, schema or None)["constrained_columns"])
    except NoSuchTableError as exc:
        raise ActionError(f"no table {table!r}") from exc
    columns = existing if wanted == ALL else list(wanted)
    missing = [c for c in columns if c not in existing]
    if missing:
        raise ActionError(
            f"table {table!r} has no column {', '.join(map(repr, missing))}",
            hint=f"its columns: {', '.join(existing)}",
        )
    row = list(run_sql(connection, _query(connection, table, columns, key)).one())
    return {
        "rows": int(row[0]),
        "columns": columns,
        "key": key,
        "checksum": _hex(row[1]) + _hex(row[2]),
        "by_column": {c: _hex(value) for c, value in zip(columns, row[3:], strict=True)},
    }


def _query(connection: Connection, table: str, columns: list[str], key: list[str]) -> str:
    """count(*), the row checksum's two halves (seeds 0 and 1), then one sum per column
    (its value with the key, seed 0)."""
    quote = connection.dialect.identifier_preparer.quote
    source = ".".join(quote(part) for part in table.split("."))
    whole = [quote(c) for c in columns]
    hashed = [(whole, 0), (whole, 1)]
    hashed += [([quote(k) for k in key if k != c] + [quote(c)], 0) for c in columns]
    if connection.dialect.name == "sqlite":
        sums = [f"backout_sum64(backout_hash({seed}, {', '.join(cols)}))" for cols, seed in hashed]
    else:
        sums = [
            f"sum(hashtextextended(ROW({', '.join(cols)})::text, {seed}))" for cols, seed in hashed
        ]
    # every name is quoted by the dialect's identifier preparer
    return f"SELECT count(*), {', '.join(sums)} FROM {source}"  # noqa: S608


def _hex(total: Any) -> str:
    """A sum of 64-bit hashes, modulo 2^64, as 16 hex digits (an empty table's is 0)."""
    return f"{int(total or 0) & MASK64:016x}"


# --- SQLite's functions ----------------------------------------------------------------------
def _hash(seed: int, *values: Any) -> int:
    """A signed 64-bit hash of the values, tagged with their storage class."""
    tagged = [[type(v).__name__, v.hex() if isinstance(v, bytes) else v] for v in values]
    text = json.dumps([seed, tagged]).encode()
    digest = hashlib.md5(text, usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Sum64:
    """``sum`` modulo 2^64 (SQLite's own raises on overflow), as a signed 64-bit value."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: int | None) -> None:
        if value is not None:
            self.total = (self.total + value) & MASK64

    def finalize(self) -> int:
        return self.total - (1 << 64) if self.total >= 1 << 63 else self.total


def _register_sqlite(connection: Connection) -> None:
    raw = connection.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    raw.create_function("backout_hash", -1, _hash, deterministic=True)
    raw.create_aggregate("backout_sum64", 1, _Sum64)


# --- comparing -------------------------------------------------------------------------------
def encode(prints: dict[str, Any], dialect: str) -> str:
    return json.dumps(
        {"method": METHOD, "dialect": dialect, "tables": prints}, sort_keys=True, indent=None
    )


def decode(value: str) -> dict[str, Any]:
    """The tables of a fingerprint written by :func:`encode`; a clear error otherwise."""
    try:
        data = json.loads(value)
        tables = data["tables"]
        if not isinstance(tables, dict) or data.get("method") != METHOD:
            raise TypeError("not a fingerprint")
    except (ValueError, KeyError, TypeError) as exc:
        raise ActionError(
            "`equals` is not a fingerprint",
            hint="give the value of a `fingerprint:` baseline: `{{ baseline.NAME }}`",
        ) from exc
    return tables


def differences(
    expected: dict[str, Any], actual: dict[str, Any], judged: dict[str, list[str]]
) -> list[str]:
    """What differs, table by table, in words: the row count, then the ``judged`` columns
    whose checksum changed (``rows`` when only the whole-row checksum did)."""
    found: list[str] = []
    for table, columns in judged.items():
        want, got = expected[table], actual[table]
        if got["rows"] != want["rows"]:
            found.append(f"{table}: row count {want['rows']} → {got['rows']}")
        changed = [c for c in columns if got["by_column"].get(c) != want["by_column"].get(c)]
        whole = columns == list(want["columns"]) and got["checksum"] != want["checksum"]
        if changed or whole:
            what = f"columns [{', '.join(changed)}]" if changed else "rows"
            found.append(f"{table}: checksum differs in {what}")
    return found


def _judged(options: FingerprintCheckOptions, expected: dict[str, Any]) -> dict[str, list[str]]:
    """The tables and columns the check judges: the baseline's, or the ones it names (which
    the baseline must cover)."""
    if options.tables is None:
        return {table: list(spec["columns"]) for table, spec in expected.items()}
    judged: dict[str, list[str]] = {}
    for table, columns in options.tables.items():
        if table not in expected:
            raise ActionError(
                f"the baseline fingerprint has no table {table!r}",
                hint=f"it has: {', '.join(expected)}",
            )
        recorded = list(expected[table]["columns"])
        chosen = recorded if columns == ALL else list(columns)
        if not set(chosen) <= set(recorded):
            raise ActionError(
                f"the baseline fingerprint of {table!r} covers columns {recorded}, not "
                f"{sorted(set(chosen) - set(recorded))}"
            )
        judged[table] = chosen
    return judged


class FingerprintSource(Source):
    kind = "fingerprint"
    Options = FingerprintOptions

    def read(self, options: FingerprintOptions, ctx: Context) -> str:
        with connect(options, ctx) as connection:
            return encode(fingerprint(connection, options.tables), connection.dialect.name)

    def describe(self, options: FingerprintOptions) -> str:
        return f"fingerprint of {', '.join(options.tables)} in {shown(options)}"


class FingerprintCheck(Check):
    kind = "fingerprint"
    Options = FingerprintCheckOptions

    def check(self, options: FingerprintCheckOptions, ctx: Context) -> Verdict:
        try:
            expected = decode(options.equals)
            judged = _judged(options, expected)
            with connect(options, ctx) as connection:
                # recompute over the recorded columns: the checksums must be comparable
                actual = fingerprint(connection, {t: expected[t]["columns"] for t in judged})
        except ActionError as exc:
            return Verdict(False, ctx.redact(exc.message))
        counts = ", ".join(f"{t} {actual[t]['rows']} rows" for t in judged)
        found = differences(expected, actual, judged)
        if found:
            return Verdict(False, "; ".join(found), counts)
        return Verdict(True, f"fingerprint matches the baseline ({counts})", counts)

    def describe(self, options: FingerprintCheckOptions) -> str:
        which = ", ".join(options.tables) if options.tables else "every table of the baseline"
        return f"fingerprint of {which} in {shown(options)} equals {options.equals}"
