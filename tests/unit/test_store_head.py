"""The store knows its newest migration without importing alembic; it must be alembic's."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from backout.store.db import HEAD_REVISION, _alembic_config


def test_head_revision_is_alembics_head() -> None:
    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == HEAD_REVISION
