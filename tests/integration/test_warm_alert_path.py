"""A watch makes its alert path's reads before it says it watches (store/warm.py): once per
store engine, reads only, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from backout.store.db import open_store
from backout.store.warm import warm_alert_path


def test_the_alert_path_is_read_once_per_engine_and_nothing_is_written(store_url: str) -> None:
    store = open_store(store_url)
    try:
        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement.lstrip().split(None, 1)[0].upper())

        event.listen(store.engine, "before_cursor_execute", seen)
        warm_alert_path(store, "run-1", 0.0)
        first = list(statements)
        warm_alert_path(store, "run-2", 0.0)
        # the inbox's look and take, the claim check, the open incident, the audit chain
        assert first.count("SELECT") >= 5
        assert not {"INSERT", "UPDATE", "DELETE"} & set(first)
        assert statements == first, "a second warm-up on the same engine ran statements"
    finally:
        store.dispose()
