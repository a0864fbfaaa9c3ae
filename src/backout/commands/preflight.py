"""``preflight``: prove a plan's migrations reverse, on a throwaway database, before a deploy.

For each migration step of the plan (``alembic`` and ``sql_migration``, deploy stages
first), on a database created for the purpose — a new PostgreSQL database on the server
``--database`` names, or a temporary SQLite file — apply up → down → up and compare the
schema after the down with the one before the up (and after the second up with the first):
a difference fails the preflight with the objects listed. An Alembic step is checked one
revision at a time from base up to its target (the "stairway"). The throwaway database is
dropped afterwards, also after a failure or a stop. The result is recorded in the audit
chain (``preflight.passed`` / ``preflight.failed``, subject ``plan:NAME``), where the gate
reads it when the policy asks for ``preflight: true``.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from backout.actions.alembic import AlembicOptions
from backout.actions.alembic import call as alembic
from backout.actions.sql_migration import SqlMigrationOptions, run_script
from backout.commands.caller import Caller
from backout.errors import ActionError, UsageError
from backout.kernel.options import Context, resolve
from backout.plans import load_plan
from backout.probes.schema import Change, diff, schema_of
from backout.probes.sqldb import Database, connect
from backout.redact import Redactor
from backout.spec.loader import LoadedPlan
from backout.spec.models import Step
from backout.stop import STOP
from backout.store import audit
from backout.store.dialect import hide_password, normalize_url

KINDS = ("alembic", "sql_migration")
DATABASE_HINT = (
    "give --database URL: a PostgreSQL server where backout may create and drop a "
    "throwaway database (postgresql://postgres@127.0.0.1/postgres), or sqlite:// for a "
    "temporary SQLite file"
)


@dataclass(frozen=True)
class MigrationResult:
    """One migration's round trip: up → down → up."""

    step: str
    kind: str
    migration: str  # an Alembic revision, or the up file
    passed: bool
    problem: str = ""
    after_down: list[Change] = field(default_factory=list)  # vs. before the up
    after_reapply: list[Change] = field(default_factory=list)  # vs. after the first up

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kind": self.kind,
            "migration": self.migration,
            "passed": self.passed,
            "problem": self.problem,
            "after_down": [c.to_json() for c in self.after_down],
            "after_reapply": [c.to_json() for c in self.after_reapply],
        }


@dataclass(frozen=True)
class PreflightReport:
    plan: str
    plan_version: str
    database: str  # where it ran, without a password
    results: list[MigrationResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "plan_version": self.plan_version,
            "database": self.database,
            "passed": self.passed,
            "results": [r.to_json() for r in self.results],
        }


@dataclass(frozen=True)
class _Migration:
    step: Step
    options: AlembicOptions | SqlMigrationOptions


def preflight(
    caller: Caller, path: str | Path, database: str | None = None, timeout: float = 300.0
) -> PreflightReport:
    """Round-trip every migration step of the plan on a throwaway database; audited."""
    loaded = load_plan(path)
    migrations = _migrations(loaded)
    if not migrations:
        raise UsageError(
            f"{path}: the plan has no `alembic` or `sql_migration` steps to check",
            hint="preflight checks the migrations of `deploy:` stages and `steps:`",
        )
    redact = Redactor([p for p in [_password(database)] if p])
    ctx = Context(loaded.base_dir, timeout, {}, redact)
    with throwaway(database, migrations) as url:
        results: list[MigrationResult] = []
        for migration in migrations:
            results += _check(migration, url, ctx)
            if not results[-1].passed:
                break  # the database is not where the next migration expects it
    report = PreflightReport(loaded.plan.plan, loaded.version, _where(database), results)
    _record(caller, report)
    return report


def _password(database: str | None) -> str | None:
    return make_url(normalize_url(database)).password if database else None


def _where(database: str | None) -> str:
    if database is None or make_url(normalize_url(database)).get_backend_name() == "sqlite":
        return "a temporary SQLite file"
    return f"a throwaway database on {hide_password(database)}"


# --- which migrations ------------------------------------------------------------------------
def _migrations(loaded: LoadedPlan) -> list[_Migration]:
    plan = loaded.plan
    steps: list[Step] = [
        s for stage in (plan.deploy.stages if plan.deploy else []) for s in stage.steps
    ]
    steps += plan.steps
    found: list[_Migration] = []
    seen: set[Any] = set()
    for step in (s for s in steps if s.kind in KINDS):
        options = _options(step)
        key = _identity(options, loaded.base_dir)
        if key not in seen:
            seen.add(key)
            found.append(_Migration(step, options))
    return found


def _options(step: Step) -> AlembicOptions | SqlMigrationOptions:
    model = AlembicOptions if step.kind == "alembic" else SqlMigrationOptions
    options = model.model_validate(step.options)
    names = ("config", "upgrade") if step.kind == "alembic" else ("up", "down")
    for name in names:
        value = getattr(options, name)
        if isinstance(value, str) and "{{" in value:
            raise UsageError(
                f"step {step.name!r}: `{name}` is a template ({value}); preflight needs the "
                "file or revision as written",
            )
    return options


def _identity(options: AlembicOptions | SqlMigrationOptions, base: Path) -> Any:
    if isinstance(options, AlembicOptions):
        return ("alembic", resolve(base, options.config).resolve())
    return ("sql", resolve(base, options.up).resolve(), resolve(base, options.down).resolve())


# --- the throwaway database ------------------------------------------------------------------
@contextmanager
def throwaway(database: str | None, migrations: list[_Migration]) -> Iterator[str]:
    """A URL of an empty database made for this preflight, dropped when the block ends
    however it ends."""
    if database is None:
        _sqlite_only(migrations)
    if database is None or make_url(normalize_url(database)).get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory(prefix="backout-preflight-") as folder:
            yield f"sqlite:///{Path(folder) / 'preflight.db'}"
        return
    admin = make_url(normalize_url(database))
    if admin.get_backend_name() != "postgresql":
        raise UsageError(
            f"--database: {admin.get_backend_name()} is not supported", hint=DATABASE_HINT
        )
    name = f"backout_preflight_{uuid.uuid4().hex[:12]}"
    _admin(admin.render_as_string(hide_password=False), f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(
            admin.render_as_string(hide_password=False),
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        )


def _sqlite_only(migrations: list[_Migration]) -> None:
    for migration in migrations:
        url = migration.options.url
        if not (url and url.strip().startswith("sqlite")):
            what = "a URL that is a template" if url and "{{" in url else "no SQLite URL"
            raise UsageError(
                f"step {migration.step.name!r} has {what}: preflight cannot tell which "
                "database it runs on",
                hint=DATABASE_HINT,
            )


def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        raise UsageError(
            f"--database {hide_password(url)}: {first}",
            hint="the role needs CREATEDB on that server",
        ) from exc
    finally:
        engine.dispose()


# --- the round trips -------------------------------------------------------------------------
def schema(url: str, ctx: Context) -> dict[str, str]:
    with connect(Database(url=url), ctx) as connection:
        return schema_of(connection)


def _check(migration: _Migration, url: str, ctx: Context) -> list[MigrationResult]:
    options = migration.options
    if isinstance(options, SqlMigrationOptions):
        target = options.model_copy(update={"url": url, "password": None})
        return [
            _round_trip(
                migration,
                options.up,
                url,
                ctx,
                up=lambda: run_script(
                    target, ctx, resolve(ctx.workdir, options.up), options.transaction
                ),
                down=lambda: run_script(
                    target, ctx, resolve(ctx.workdir, options.down), options.transaction
                ),
            )
        ]
    revisions, _ = alembic(options, ctx, "revisions", options.upgrade or "heads", url)
    results: list[MigrationResult] = []
    for revision in revisions["revisions"]:
        rev, parent = revision["revision"], revision["down_revision"]
        # a merge has several parents: one step back from it
        down_to = "-1" if isinstance(parent, list) else parent or "base"
        results.append(
            _round_trip(
                migration,
                rev,
                url,
                ctx,
                up=partial(alembic, options, ctx, "upgrade", rev, url),
                down=partial(alembic, options, ctx, "downgrade", down_to, url),
            )
        )
        if not results[-1].passed:
            break
    return results


def _round_trip(
    migration: _Migration,
    name: str,
    url: str,
    ctx: Context,
    up: Callable[[], object],
    down: Callable[[], object],
) -> MigrationResult:
    def result(passed: bool, problem: str = "", **changes: list[Change]) -> MigrationResult:
        return MigrationResult(
            migration.step.name, migration.step.kind, name, passed, problem, **changes
        )

    STOP.check()
    before = schema(url, ctx)
    try:
        up()
    except ActionError as exc:
        return result(False, f"the upgrade failed: {exc.message}")
    applied = schema(url, ctx)
    STOP.check()
    try:
        down()
    except ActionError as exc:
        return result(False, f"the downgrade failed: {exc.message}")
    after_down = diff(before, schema(url, ctx))
    STOP.check()
    try:
        up()
    except ActionError as exc:
        problem = f"the upgrade after the downgrade failed: {exc.message}"
        return result(False, problem, after_down=after_down)
    after_reapply = diff(applied, schema(url, ctx))
    if after_down:
        return result(
            False,
            "the downgrade does not restore the schema",
            after_down=after_down,
            after_reapply=after_reapply,
        )
    if after_reapply:
        return result(
            False,
            "the upgrade after the downgrade makes another schema",
            after_reapply=after_reapply,
        )
    return result(True)


# --- the record ------------------------------------------------------------------------------
def _record(caller: Caller, report: PreflightReport) -> None:
    with caller.store.session() as session:
        audit.append(
            session,
            caller.actor,
            "preflight.passed" if report.passed else "preflight.failed",
            f"plan:{report.plan}",
            {
                "plan_version": report.plan_version,
                "database": report.database,
                "migrations": [r.migration for r in report.results],
                "problems": [f"{r.migration}: {r.problem}" for r in report.results if not r.passed],
            },
        )
