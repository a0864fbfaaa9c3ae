"""A read-only session never waits for the write lock: the courier polls the outbox ten
times a second, and a process stopped (SIGSTOP) in the middle of such a poll must not hold
the lock every writer needs. Both stores: SQLite's IMMEDIATE transactions are the case."""

from __future__ import annotations

import threading

from sqlalchemy import text

from backout.store.db import Store


def test_a_read_only_session_runs_beside_a_writer(store_url: str) -> None:
    writer, reader = Store(store_url), Store(store_url)
    try:
        writer.open()
        reader.open()  # opening migrates, which writes: before the writer holds the lock
        done = threading.Event()

        def read() -> None:
            with reader.session(read_only=True) as session:
                session.execute(text("SELECT count(*) FROM runs")).scalar()
            done.set()

        with writer.session() as session:  # holds SQLite's write lock until it ends
            session.execute(text("UPDATE runs SET message = message"))
            thread = threading.Thread(target=read)
            thread.start()
            # a reader that needed the lock would wait here until the writer commits
            assert done.wait(10), "the read-only session waited for the writer"
        thread.join(10)
    finally:
        writer.dispose()
        reader.dispose()
