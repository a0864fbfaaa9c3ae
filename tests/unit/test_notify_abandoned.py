"""A run given up with `backout abandon` is a notify event of its own: `run.abandoned`,
made from its one `run_abandoned` journal event, saying who gave it up and why."""

from __future__ import annotations

from backout.kernel.events import NOTIFY_EVENTS, Event, EventKind
from backout.kernel.states import RunStatus
from backout.notify import RunFacts, compose, notify_event
from backout.redact import Redactor


def test_an_abandoned_run_tells_who_and_why() -> None:
    event = Event(
        run_id="3f9c2a1b7d04",
        seq=9,
        at=1_780_000_000.0,
        kind=EventKind.RUN_ABANDONED,
        data={"by": "dana", "reason": "restored by hand from the backup"},
    )
    assert notify_event(event, RunStatus.FAILED, "backout") == "run.abandoned"
    assert "run.abandoned" in NOTIFY_EVENTS
    facts = RunFacts(run_id="3f9c2a1b7d04", service="ledger", plan="ledger")
    notice = compose("run.abandoned", event, facts, "failed", Redactor())
    assert notice.title == "ledger: run abandoned by dana"
    assert "restored by hand from the backup" in notice.text
    assert ("Reason", "restored by hand from the backup") in notice.fields
    assert notice.severity == "warning"
    assert not notice.resolving  # a PagerDuty alert stays open for a person to close
    # a drill is never abandoned into a page
    assert notify_event(event, RunStatus.FAILED, "rehearsal") is None
