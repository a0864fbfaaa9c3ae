"""A watch makes its alert path's statements before it says it watches (store/warm.py):
once per store engine; the reads find nothing and the writes are rolled back, on SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select

from backout.store import inbox
from backout.store.db import open_store
from backout.store.warm import warm_alert_path


def test_the_alert_path_runs_once_per_engine_and_keeps_nothing(store_url: str) -> None:
    store = open_store(store_url)
    try:
        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement.lstrip().split(None, 1)[0].upper())

        event.listen(store.engine, "before_cursor_execute", seen)
        warm_alert_path(store, "run-1", 0.0)
        first = list(statements)
        warm_alert_path(store, "run-2", 0.0)
        # the inbox's look and take, the claim check, the open incident, the audit chain;
        # then the alert's entry, its taking and its claim, made and rolled back
        assert first.count("SELECT") >= 5
        assert first.count("INSERT") == 2
        assert first.count("UPDATE") == 1
        assert "DELETE" not in first
        assert statements[: len(first)] == first
        assert "INSERT" not in statements[len(first) :], "a second warm-up ran statements"
        with store.session(read_only=True) as session:
            assert session.scalar(select(func.count()).select_from(inbox.InboxRow)) == 0
            assert session.scalar(select(func.count()).select_from(inbox.AlertActionRow)) == 0
    finally:
        store.dispose()
