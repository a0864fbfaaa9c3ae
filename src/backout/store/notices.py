"""Wake-ups: tell whoever waits on a table that a row arrived, instead of having them poll it.

The table stays the truth; a notice only says "look now". A writer calls :func:`notify` in
the transaction that writes the row. Once that transaction commits, every
:class:`Doorbell` of this process subscribed to the channel and key rings at once, and on
PostgreSQL the transaction also sends ``NOTIFY channel, 'key'`` (delivered at commit,
dropped on rollback), which rings the doorbells of every other process that listens.

A process listens on one dedicated connection per store (``LISTEN``, read with psycopg's
``notifies()``), opened when its first doorbell on that store is made. While it is
connected, :attr:`Doorbell.pushed` is True and a waiter may poll rarely; while it is down,
``pushed`` is False and waiters keep polling. Each (re)connection rings every doorbell
once: a notice sent while nobody listened is caught up by one look at the table.

SQLite has no NOTIFY, but it tells a connection whether anyone else committed since it
last asked (``PRAGMA data_version``). One thread per SQLite file asks every ``WATCH_S`` on
a connection of its own, and at once when the database or its write-ahead log is written
(Linux inotify on its folder: :mod:`backout.store.filewatch`); when another connection
(another process, or this one's pool)
has committed, it reads what the notices would have said from the tables themselves
(:class:`_Changes`: the journal and inbox rows past the last it saw, the leases whose
holder changed) and rings those doorbells only, as a NOTIFY would. A commit of another
process so reaches the waiters of this one within a millisecond or so (within ``WATCH_S``
without inotify), and ``pushed`` is True there too while the thread runs.

Channels:

* ``backout_inbox`` (key: the service): an entry for that service's run in the trigger inbox;
* ``backout_leases`` (key: the service): a lease was released, its run may be orphaned;
* ``backout_journal`` (key: the run id): an event of that run was journalled.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from backout.store import filewatch
from backout.store.dialect import application_name

INBOX = "backout_inbox"
LEASES = "backout_leases"
JOURNAL = "backout_journal"
CHANNELS = (INBOX, LEASES, JOURNAL)
RECONNECT_S = 1.0  # between two attempts to (re)open the listening connection
# TCP keepalives find a dead server under a quiet listening connection (no query needed,
# so no notice can slip by between two reads): idle 10 s, then 3 probes 5 s apart
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
LINGER_S = 5.0  # a connection nobody has listened on for this long is closed
WATCH_S = 0.05  # SQLite: how often the watching connection asks whether anyone committed
SETTLE_STEP_S = 0.001  # SQLite: the first look again after a write showed no commit yet
ROUND_S = 1.0  # how long the listening thread waits for notices between two looks around
READY_WAIT_S = 5.0  # how long a new doorbell waits for the listening connection
ANY = ""  # a doorbell key that rings for every key of its channel
NOTICE = "notice"  # why a doorbell rang: a notice for its channel and key (or a reconnection)


class Doorbell:
    """Rings when a notice for (channel, key) arrives; :meth:`wait` returns at once then.
    ``on_ring`` (if any) is called on each ring too, from the ringing thread: it must be
    quick and thread-safe (e.g. ``loop.call_soon_threadsafe`` to wake an asyncio task)."""

    def __init__(
        self,
        channel: str,
        key: str,
        listener: _Listener | None,
        on_ring: Callable[[], None] | None = None,
    ) -> None:
        self.channel, self.key = channel, key
        self.on_ring = on_ring
        self._rung = threading.Event()
        self._listener = listener
        self._why: set[str] = set()
        self._why_lock = threading.Lock()

    @property
    def pushed(self) -> bool:
        """Notices from other processes arrive (PostgreSQL, connection up); else poll."""
        return self._listener is not None and self._listener.ready.is_set()

    def ring(self, why: str = NOTICE) -> None:
        """Wake the waiter; ``why`` says what for (a notice, or a waiter's own reason such as
        a fresh telemetry reading), read back with :meth:`reasons`."""
        with self._why_lock:
            self._why.add(why)
        self._rung.set()
        if self.on_ring is not None:
            self.on_ring()

    def reasons(self) -> set[str]:
        """Why it rang since the last call (and forget it)."""
        with self._why_lock:
            why, self._why = self._why, set()
        return why

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a ring; True if it rang (and is re-armed)."""
        rung = self._rung.wait(max(0.0, timeout))
        if rung:  # a ring after this is kept for the next wait; the caller looks after this
            self._rung.clear()
        return rung

    def close(self) -> None:
        _unsubscribe(self)
        if self._listener is not None:
            self._listener.leave()

    def __enter__(self) -> Doorbell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_LOCK = threading.Lock()
_BELLS: dict[tuple[str, str], set[Doorbell]] = {}
_LISTENERS: dict[str, _Listener] = {}  # store URL -> its listening connection


def _forked() -> None:
    """In a child made by fork(): the listening threads did not come along (and one may
    have held the lock at that moment), so start afresh: a new lock, no listener; the
    doorbells the child inherited poll until a new doorbell starts listening again."""
    global _LOCK
    _LOCK = threading.Lock()
    _LISTENERS.clear()
    for bells in _BELLS.values():
        for bell in bells:  # their locks too may have been held by a thread left behind
            bell._listener = None
            bell._why_lock = threading.Lock()
            bell._rung = threading.Event()


os.register_at_fork(after_in_child=_forked)


def doorbell(
    engine: Engine, channel: str, key: str = ANY, on_ring: Callable[[], None] | None = None
) -> Doorbell:
    """Subscribe to ``channel`` notices for ``key`` (ANY: all keys). On PostgreSQL, waits
    (briefly) until this process listens, so no notice sent after this returns is missed.
    Close it (or use it as a context manager) when done."""
    listener = _join(engine)
    bell = Doorbell(channel, key, listener, on_ring)
    with _LOCK:
        _BELLS.setdefault((channel, key), set()).add(bell)
    if listener is not None:
        listener.ready.wait(READY_WAIT_S)
    return bell


def _unsubscribe(bell: Doorbell) -> None:
    with _LOCK:
        bells = _BELLS.get((bell.channel, bell.key))
        if bells is not None:
            bells.discard(bell)
            if not bells:
                del _BELLS[(bell.channel, bell.key)]


def ring(channel: str, key: str) -> None:
    """Ring this process's doorbells for (channel, key), and those for the whole channel."""
    with _LOCK:
        bells = [*_BELLS.get((channel, key), ()), *_BELLS.get((channel, ANY), ())]
    for bell in bells:
        bell.ring()


def ring_everyone() -> None:
    """Ring every doorbell of this process (a stop: every waiter looks up at once)."""
    _ring_all()


def _ring_all() -> None:
    with _LOCK:
        bells = [bell for group in _BELLS.values() for bell in group]
    for bell in bells:
        bell.ring()


_NOTIFY = text("SELECT pg_notify(:channel, :key)")  # built once: every journal write sends one


def notify(session: Session, channel: str, key: str) -> None:
    """In the transaction writing the row: once it commits, ring whoever waits for it
    (here at once; other processes through PostgreSQL's NOTIFY)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(_NOTIFY, {"channel": channel, "key": key})
    event.listen(session, "after_commit", lambda _session: ring(channel, key), once=True)


# --- the listening connection (PostgreSQL) ---------------------------------------------------
def _join(engine: Engine) -> _Listener | None:
    """The store's listening connection (started if need be), counted as used once more;
    None for a store nobody else can write to (an in-memory SQLite database)."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if not path or path == ":memory:" or path.startswith("file::memory:"):
            return None
        file = os.path.abspath(path)
        connect = _sqlite_connector(file)

        def make(url: str) -> _Listener:
            return _SqliteWatcher(url, connect, file)

    elif engine.dialect.name == "postgresql":
        connect = _connector(engine)

        def make(url: str) -> _Listener:
            return _Listener(url, connect)

    else:
        return None
    url = engine.url.render_as_string(hide_password=False)
    with _LOCK:
        listener = _LISTENERS.get(url)
        if listener is None:
            listener = _LISTENERS[url] = make(url)
            listener.thread.start()
        listener.users += 1
    return listener


def _sqlite_connector(path: str) -> Callable[[], Any]:
    """A connection of its own to the file, which it never writes (nor creates)."""
    import sqlite3

    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=rw"
    return lambda: sqlite3.connect(uri, uri=True, timeout=10, check_same_thread=False)


def _connector(engine: Engine) -> Callable[[], Any]:
    """Opens a connection of its own (not the pool's) with the engine's own arguments."""
    import psycopg

    args, params = engine.dialect.create_connect_args(engine.url)
    params = {
        "connect_timeout": 10,
        **KEEPALIVES,
        **params,
        "autocommit": True,
        "application_name": f"{application_name()}:listen",
    }
    return lambda: psycopg.connect(*args, **params)


class _Listener:
    """One thread per store URL: LISTEN on every channel, ring the doorbells a notice names.
    It ends (closing its connection) once no doorbell has used it for ``LINGER_S``."""

    def __init__(self, url: str, connect: Callable[[], Any]) -> None:
        self.url, self.connect = url, connect
        self.users = 0  # open doorbells; changed under _LOCK
        self.idle_since = time.monotonic()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="backout-listen", daemon=True)

    def leave(self) -> None:
        with _LOCK:
            self.users -= 1
            if self.users == 0:
                self.idle_since = time.monotonic()

    def _done(self) -> bool:
        """Nobody listens any more: forget this listener (a new doorbell starts another)."""
        with _LOCK:
            if self.users or time.monotonic() - self.idle_since < LINGER_S:
                return False
            del _LISTENERS[self.url]
            return True

    def _run(self) -> None:
        import psycopg

        while not self._done():
            try:
                with self.connect() as conn:
                    self._listen(conn)
                    return
            except psycopg.Error:
                pass
            self.ready.clear()
            _ring_all()  # waiters poll until the connection is back
            time.sleep(RECONNECT_S)

    def _listen(self, conn: Any) -> None:
        for channel in CHANNELS:
            conn.execute(f"LISTEN {channel}")
        self.ready.set()
        _ring_all()  # catch up on what was sent while nobody listened
        while not self._done():
            for notice in conn.notifies(timeout=ROUND_S):
                ring(notice.channel, notice.payload)
        self.ready.clear()


class _SqliteWatcher(_Listener):
    """One thread per SQLite file: when another connection committed (``PRAGMA
    data_version`` moved), rings the doorbells its new rows concern; asks every
    ``WATCH_S``, and at once when the file or its write-ahead log is written (inotify,
    where there is one: :mod:`backout.store.filewatch`)."""

    def __init__(self, url: str, connect: Callable[[], Any], file: str) -> None:
        super().__init__(url, connect)
        self.file = file

    def _run(self) -> None:
        import sqlite3

        while not self._done():
            try:
                with contextlib.closing(self.connect()) as conn:
                    self._watch(conn)
                    return
            except sqlite3.Error:
                pass
            self.ready.clear()
            _ring_all()  # waiters poll until the file can be watched again
            time.sleep(RECONNECT_S)

    def _watch(self, conn: Any) -> None:
        def version() -> int:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

        folder, name = os.path.split(self.file)
        written = filewatch.watch(folder, {name, f"{name}-wal"})  # before the first look
        try:
            seen = version()
            changes = _Changes(conn)
            self.ready.set()
            _ring_all()  # catch up on what was committed before
            while not self._done():
                if written is None:
                    time.sleep(WATCH_S)
                    seen = self._look(version(), seen, changes)
                    continue
                woken = written.wait(WATCH_S)  # a write of the file wakes it early
                now = version()
                # a commit writes its last frame to the log just before it is visible (the
                # index in shared memory, which no file event tells of): look again after
                # 1, 2, 4 … ms, until it shows or the next look would be due anyway
                step = SETTLE_STEP_S
                while woken and now == seen and step < WATCH_S:
                    written.wait(step)
                    now = version()
                    step *= 2
                seen = self._look(now, seen, changes)
        finally:
            if written is not None:
                written.close()

    @staticmethod
    def _look(now: int, seen: int, changes: _Changes) -> int:
        """Ring for what others committed since ``seen``; the version seen now."""
        if now != seen:
            for channel, key in changes.since():
                ring(channel, key)
        return now


class _Changes:
    """What a NOTIFY would have said since the last look, read from the tables: a journal
    event (JOURNAL, its run), an inbox entry (INBOX, its service), a lease claimed or
    released (LEASES, its service; a renewal is not news). SQLite writes one transaction
    at a time, so rows past the highest id seen are exactly the new ones."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.journal = self._top("journal")
        self.inbox = self._top("trigger_inbox")
        self.leases = self._holders()

    def _top(self, table: str) -> int:
        # the table names are this module's constants: no text from outside reaches the SQL
        return int(self.conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])  # noqa: S608

    def _holders(self) -> dict[str, tuple[str, int]]:
        rows = self.conn.execute("SELECT service, owner, token FROM leases").fetchall()
        return {str(service): (str(owner), int(token)) for service, owner, token in rows}

    def since(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for table, channel, column in (
            ("journal", JOURNAL, "run_id"),
            ("trigger_inbox", INBOX, "service"),
        ):
            last = self.journal if table == "journal" else self.inbox
            rows = self.conn.execute(
                f"SELECT id, {column} FROM {table} WHERE id > ? ORDER BY id",  # noqa: S608
                (last,),
            ).fetchall()
            if rows:
                keys = dict.fromkeys(str(key) for _, key in rows)
                found += [(channel, key) for key in keys]
                if table == "journal":
                    self.journal = int(rows[-1][0])
                else:
                    self.inbox = int(rows[-1][0])
        holders = self._holders()
        found += [
            (LEASES, service)
            for service in {*holders, *self.leases}
            if holders.get(service) != self.leases.get(service)
        ]
        self.leases = holders
        return found
