"""``alembic:`` — upgrade or downgrade a database with the project's own Alembic scripts.

The step runs Alembic in a child process (the small program in ``alembic_shim.py``, under
the step shim: its process group is killed at the timeout or on a stop), with the Python
given (the one that has the project's models; default: backout's own). It records the
revision the database was at before and after, and its reverse goes back to the
revision before: a deploy's ``upgrade`` is backed out by a downgrade to exactly where it
started.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from backout.actions.alembic_shim import ERROR, MARK
from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context, Options, resolve
from backout.proc import run_process
from backout.store.dialect import normalize_url

SHIM_SOURCE = Path(__file__).with_name("alembic_shim.py").read_text(encoding="utf-8")


class AlembicOptions(Options):
    config: str = Field("alembic.ini", description="The alembic.ini (relative to the plan).")
    upgrade: str | None = Field(None, description="Upgrade to this revision (`head`, an id).")
    downgrade: str | None = Field(
        None, description="Downgrade to this revision, e.g. `{{ baseline.revision }}`."
    )
    url: str | None = Field(
        None,
        description="Database URL given to env.py as `sqlalchemy.url` (default: the "
        "config's); usually `{{ secrets.db_url }}`.",
    )
    password: str | None = Field(None, description="The URL's password, kept out of it.")
    python: str | None = Field(
        None, description="The Python that runs Alembic (default: backout's own)."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")

    @model_validator(mode="after")
    def _one_direction(self) -> AlembicOptions:
        if (self.upgrade is None) == (self.downgrade is None):
            raise ValueError("give exactly one of `upgrade:` or `downgrade:`")
        return self

    @property
    def verb(self) -> str:
        return "upgrade" if self.upgrade is not None else "downgrade"

    @property
    def revision(self) -> str:
        return self.upgrade if self.upgrade is not None else str(self.downgrade)


def alembic_url(url: str, password: str | None) -> str:
    """The URL env.py gets: psycopg 3 for PostgreSQL, the password put in."""
    from sqlalchemy.engine import make_url  # here: plans are validated without SQLAlchemy

    parsed = make_url(normalize_url(url))
    if password is not None:
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)


def call(
    options: AlembicOptions, ctx: Context, verb: str, revision: str, url: str | None = None
) -> tuple[dict[str, Any], str]:
    """Run one verb of the shim: (its result, the redacted output). Raises ActionError
    with Alembic's own one-line reason when it fails."""
    config = resolve(ctx.workdir, options.config).resolve()
    if not config.is_file():
        raise ActionError(
            f"no alembic config at {config}", hint="`config:` is relative to the plan"
        )
    env = {**ctx.env, **options.env}
    target = url if url is not None else options.url
    if target:
        env["BACKOUT_ALEMBIC_URL"] = alembic_url(target, options.password)
    python = options.python or sys.executable
    argv = [python, "-c", SHIM_SOURCE, str(config), verb, revision]
    result = run_process(argv, cwd=config.parent, timeout=ctx.timeout, env=env)
    output = ctx.redact(result.output)
    if result.timed_out:
        raise ActionError(f"alembic {verb} {revision} timed out after {ctx.timeout:g}s")
    lines = output.strip().splitlines()
    for line in reversed(lines):
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :]), _without_marks(lines)
        if line.startswith(ERROR):
            raise ActionError(f"alembic {verb} {revision} failed: {line[len(ERROR) :]}")
    said = lines[-1][-300:] if lines else "no output"
    raise ActionError(f"alembic {verb} {revision} failed (exit code {result.exit_code}): {said}")


def _without_marks(lines: list[str]) -> str:
    return "\n".join(line for line in lines if not line.startswith(MARK))


def at(revisions: list[str]) -> str:
    return " ".join(revisions) if revisions else "base"


class AlembicAction(Action):
    kind = "alembic"
    in_process = False
    Options = AlembicOptions

    def execute(self, options: AlembicOptions, ctx: Context) -> Outcome:
        return self._move(options, ctx, options.verb, options.revision)

    def describe(self, options: AlembicOptions) -> str:
        return f"alembic {options.verb} {options.revision} ({options.config})"

    def reverse(self, options: AlembicOptions, done: dict[str, Any], ctx: Context) -> Outcome:
        before, verb = done.get("before"), done.get("verb")
        if not isinstance(before, str) or verb not in ("upgrade", "downgrade"):
            return Outcome(False, "the step recorded no revision to go back to; not guessing")
        if " " in before:
            return Outcome(False, f"the database was at several heads ({before}); not guessing")
        back = "downgrade" if verb == "upgrade" else "upgrade"
        return self._move(options, ctx, back, before)

    def _move(self, options: AlembicOptions, ctx: Context, verb: str, revision: str) -> Outcome:
        try:
            result, output = call(options, ctx, verb, revision)
        except ActionError as exc:
            return Outcome(False, exc.message)
        before, after = at(result["before"]), at(result["after"])
        summary = f"already at {after}" if before == after else f"{verb}d {before} → {after}"
        detail = {"verb": verb, "revision": revision, "before": before, "after": after}
        return Outcome(True, summary, output, detail)
