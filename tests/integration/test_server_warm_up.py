"""The server's warm-up (server/upkeep.py): at start it runs the reads of a request's token
check and of an alert's delivery once, so the first alert after a start does not pay for
compiling them. It must write nothing: no inbox entry, no audit record, no token touched."""

from __future__ import annotations

from sqlalchemy import func, select

from backout import commands
from backout.commands.alerts import deliver_alerts
from backout.commands.caller import Caller
from backout.server.upkeep import Upkeep
from backout.settings import Settings
from backout.store.db import Store
from backout.store.inbox import InboxRow
from backout.store.models import AuditRow
from backout.store.tokens import TokenRow
from backout.triggers.alerts import WebhookPayload
from tests.callers import caller

PAYLOAD = {
    "version": "4",
    "groupKey": "{}:{}",
    "status": "firing",
    "receiver": "backout",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighErrors", "service": "shop"},
            "startsAt": "2026-12-01T00:00:00Z",
            "fingerprint": "f1",
        }
    ],
}


def counts(store_url: str) -> tuple[int, ...]:
    me = caller(Settings(database_url=store_url))
    with me.store.session(read_only=True) as session:
        rows = (session.scalar(select(func.count()).select_from(t)) for t in (AuditRow, InboxRow))
        touched = session.scalar(
            select(func.count()).select_from(TokenRow).where(TokenRow.last_used_at.is_not(None))
        )
        return (*[int(n or 0) for n in rows], int(touched or 0))


def test_the_warm_up_compiles_the_alert_path_and_writes_nothing(store_url: str) -> None:
    me = caller(Settings(database_url=store_url, actor="ops"))
    commands.create_token(me, "operator", "alertmanager", None)
    deliver_alerts(me, WebhookPayload.model_validate(PAYLOAD))  # something stored already
    before = counts(store_url)
    with Store(store_url) as store:  # a new engine: as a server just started
        cache = store.engine._compiled_cache  # SQLAlchemy's per-engine statement cache
        assert cache is not None
        compiled = len(cache)

        Upkeep(Caller(store, "backout")).warm_up()

        assert len(cache) >= compiled + 3  # the token's look-up, the watching run, the claim
    assert counts(store_url) == before  # nothing written
