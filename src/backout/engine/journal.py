"""The write-ahead journal of one run: every append is durable before the caller goes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backout.engine.view import RunView, apply, fold, trial
from backout.errors import StoreError
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RUN_TERMINAL
from backout.redact import Redactor
from backout.store import notices, repo
from backout.store.db import Store

Observer = Callable[[Event, RunView], None]
# runs inside the append's transaction, with the state the event leads to
Hook = Callable[[Session, Event, RunView], None]

# Events whose commit need not wait for the disk (see docs/operations.md, "What is synced
# when"). Losing one in a power cut is the same as a crash just before it was written,
# which resume already handles: a check runs again, a verdict is evaluated again. A step's
# start and end are always synced: a step that finished is never taken for one that was
# interrupted, even after a power cut. Syncing one event makes all before it durable too.
UNSYNCED: frozenset[str] = frozenset(
    {
        EventKind.VERIFY_STARTED,
        EventKind.CHECK_STARTED,
        EventKind.CHECK_FINISHED,
        EventKind.TRIGGER_EVALUATED,
    }
)


def _synced(written: list[tuple[Event, RunView]]) -> bool:
    """Whether these events' commit waits for the disk (all of them but ``UNSYNCED``)."""
    return any(event.kind not in UNSYNCED for event, _ in written)


class Journal:
    """Appends events for one run, enforcing transition rules against the derived state."""

    # the executor's lease (store/leases.py Fence): checked first in every append's
    # transaction, so an executor whose lease was taken over can write nothing more
    fence: Callable[[Session], None] | None = None

    def __init__(
        self,
        store: Store,
        view: RunView,
        redactor: Redactor,
        observer: Observer | None = None,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.store = store
        self.view = view
        self.redactor = redactor
        self.observer = observer
        self.hooks = hooks
        # a step's action thread journals its process group while the main thread waits;
        # a stop may journal from the main thread then: one writer at a time
        self._lock = threading.Lock()
        # events held for the next append's transaction (:meth:`hold`): already in ``view``
        self._held: list[tuple[Event, RunView]] = []

    @classmethod
    def open(
        cls,
        store: Store,
        view: RunView,
        redactor: Redactor,
        observer: Observer | None = None,
        hooks: Sequence[Hook] = (),
    ) -> Journal:
        with store.session() as session:
            events = repo.load_events(session, view.run_id)
        return cls(store, fold(view, events), redactor, observer, hooks)

    def append(
        self, kind: EventKind, step: int | None = None, attempt: int | None = None, **data: Any
    ) -> Event:
        with self._lock:
            return self._append([(kind, step, attempt, data)])[0]

    def append_together(self, *entries: tuple[EventKind, dict[str, Any]]) -> list[Event]:
        """Several run-level events (no step) in one transaction: all are written or none,
        with one disk flush (a trigger's verdict and the backout it starts)."""
        with self._lock:
            return self._append([(kind, None, None, data) for kind, data in entries])

    def append_steps(self, *entries: tuple[EventKind, int, int | None, dict[str, Any]]) -> None:
        """Several events of steps — (kind, step, attempt, data) — in one transaction: a
        step's start and the process it starts, with one disk flush."""
        with self._lock:
            self._append(list(entries))

    def hold(
        self, kind: EventKind, step: int | None = None, attempt: int | None = None, **data: Any
    ) -> None:
        """Take this event into the run's state now, and write it with the next append, in
        that append's transaction: a step's end when the next step starts at once, so the
        two cost one disk flush (docs/operations.md, "What is synced when"). Until then it
        is not in the store, and a crash loses it as it would lose an event not yet
        written. The caller makes sure an append (or :meth:`flush`) follows without a wait;
        observers see it when it is written."""
        with self._lock:
            written = self._drafts([(kind, step, attempt, data)])
            for event, _ in written:
                apply(self.view, event)
            self._held.extend(written)

    def flush(self) -> None:
        """Write the events :meth:`hold` keeps, if any, in a transaction of their own."""
        with self._lock:
            self._write_held()

    def rehearse(self, *entries: tuple[EventKind, dict[str, Any]]) -> None:
        """Write these run-level events as :meth:`append_together` would — the fence, the
        rows, the run's projection, every hook (audit, status page, notifications …), the
        notice — in a transaction that is then rolled back: nothing is kept, observed or
        rung. What it leaves is each of those statements compiled in this process, so the
        real append, when an alert comes, runs them at once (SQLAlchemy compiles a
        statement the first time a process runs it: about 15 ms of a first verdict's
        transaction on PostgreSQL). A watch calls it before it says it watches."""
        with self._lock:
            self._write_held()  # the rehearsal's drafts follow what the store has
            written = self._drafts([(kind, None, None, data) for kind, data in entries])
            with self.store.rolled_back(synced=_synced(written)) as session:
                self._write(session, written)

    def _drafts(
        self, entries: list[tuple[EventKind, int | None, int | None, Any]]
    ) -> list[tuple[Event, RunView]]:
        """Each entry as the event it becomes, with the run's state after it; raises
        TransitionError, before anything is written, for an event the run cannot take."""
        written: list[tuple[Event, RunView]] = []
        draft = self.view
        at = time.time()
        for kind, step, attempt, data in entries:
            seq = draft.last_seq + 1
            event = Event(self.view.run_id, seq, at, kind, step, attempt, self.redactor.value(data))
            draft = trial(draft, event)
            apply(draft, event)
            written.append((event, draft))
        return written

    def _write(self, session: Session, written: list[tuple[Event, RunView]]) -> None:
        if self.fence is not None:
            self.fence(session)
        # the rows, then the run's projection once, as the last event leaves it
        last = written[-1][1]
        finished = written[-1][0].at if last.status in RUN_TERMINAL else None
        events = [event for event, _ in written]
        repo.append_events(session, events, last.status, last.message, finished)
        for event, state in written:
            for hook in self.hooks:
                hook(session, event, state)
        # live followers (the API's event streams) look at once, not at their next poll
        notices.notify(session, notices.JOURNAL, self.view.run_id)

    def _write_held(self) -> None:
        if self._held:
            self._append([])

    def _observe(self, event: Event) -> None:
        if self.observer is not None:
            try:
                self.observer(event, self.view)
            except Exception:
                # Progress display must never stop a backout: the event is committed.
                self.observer = None

    def _append(self, entries: list[tuple[EventKind, int | None, int | None, Any]]) -> list[Event]:
        new = self._drafts(entries)  # a refused event leaves the held ones held
        held, self._held = self._held, []
        written = held + new
        try:
            with self.store.session(synced=_synced(written)) as session:
                self._write(session, written)
        except IntegrityError as exc:
            raise StoreError(
                "another process wrote to this run's journal",
                run_id=self.view.run_id,
                hint="two workers ran the same run; check `backout journal`",
            ) from exc
        for event, _ in held:  # in the run's state since they were held
            self._observe(event)
        for event, _ in new:
            apply(self.view, event)
            self._observe(event)
        return [event for event, _ in new]
