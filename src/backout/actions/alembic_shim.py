"""Run by the ``alembic`` action as a program (``PYTHON alembic_shim.py CONFIG VERB [REV]``),
in whichever Python has the project's alembic and models: it imports alembic and the
standard library only, never backout.

Verbs: ``upgrade REV`` and ``downgrade REV`` (alembic's commands, with the revisions the
database was at before and after), ``current``, and ``revisions TARGET`` (the chain from
base up to TARGET, oldest first). The result is one line ``BACKOUT-ALEMBIC {json}`` on
stdout; a failure is one line ``BACKOUT-ALEMBIC-ERROR message`` and exit code 1. The URL,
when the action has one, comes in ``BACKOUT_ALEMBIC_URL`` (the environment, not the argv
other users can read) and becomes the configuration's ``sqlalchemy.url``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # alembic is imported when the shim runs, not when backout loads
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

MARK = "BACKOUT-ALEMBIC "
ERROR = "BACKOUT-ALEMBIC-ERROR "


def _heads(config: Config, script: ScriptDirectory) -> list[str]:
    """The revisions the database is at, read through the project's own env.py."""
    from alembic.runtime.environment import EnvironmentContext

    found: list[str] = []

    def read(revision: Any, context: MigrationContext) -> list[Any]:
        found.extend(context.get_current_heads())
        return []

    with EnvironmentContext(config, script, fn=read, dont_mutate=True):
        script.run_env()
    return sorted(found)


def _chain(script: ScriptDirectory, target: str) -> list[dict[str, Any]]:
    steps = [
        {"revision": rev.revision, "down_revision": rev.down_revision}
        for rev in script.walk_revisions(base="base", head=target)
    ]
    return steps[::-1]


def main(argv: list[str]) -> dict[str, Any]:
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    path, verb, revision = argv[0], argv[1], (argv[2] if len(argv) > 2 else "")
    config = Config(path)
    url = os.environ.get("BACKOUT_ALEMBIC_URL")
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    script = ScriptDirectory.from_config(config)
    if verb == "revisions":
        return {"revisions": _chain(script, revision or "heads")}
    before = _heads(config, script)
    if verb == "upgrade":
        command.upgrade(config, revision)
    elif verb == "downgrade":
        command.downgrade(config, revision)
    elif verb != "current":
        raise ValueError(f"unknown verb {verb!r}")
    return {"before": before, "after": _heads(config, script) if verb != "current" else before}


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # a DBAPI error wrapped by SQLAlchemy: its own words
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}"


if __name__ == "__main__":
    try:
        result = main(sys.argv[1:])
    except Exception as exc:  # every failure becomes one line the action can show
        print(ERROR + _one_line(exc), flush=True)
        sys.exit(1)
    print(MARK + json.dumps(result), flush=True)
