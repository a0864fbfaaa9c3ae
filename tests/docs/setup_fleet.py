"""The setup of docs/fleet.md: three deployments' `/metrics` targets on one local target
server (tests/fleet_targets.py), fleet-1's already failing half its requests, and a plan
for each in ``plans/``, as the document's reader would have them."""

from __future__ import annotations

import shutil

from tests.docs.transcripts import IdMap, Session
from tests.fleet_targets import TargetServer, fleet_plan


def fleet_targets(session: Session) -> None:
    target = session.root / "fleet"
    shutil.rmtree(target, ignore_errors=True)
    (target / "plans").mkdir(parents=True)
    session.cwd, session.ids = target, IdMap()
    server = TargetServer(bad={1}).__enter__()
    session.cleanups.append(lambda: server.__exit__(None, None, None))
    for n in range(3):
        text = fleet_plan(n, server.url(n))
        (target / "plans" / f"fleet-{n}.yaml").write_text(text, encoding="utf-8")
