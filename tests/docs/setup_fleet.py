"""The setup of docs/fleet.md: three deployments' `/metrics` targets on one local target
server (tests/fleet_targets.py), fleet-1's already failing half its requests, and a plan
for each in ``plans/``, as the document's reader would have them."""

from __future__ import annotations

import shutil

from tests.docs.transcripts import IdMap, Session
from tests.fleet_targets import TargetServer

PLAN = """\
plan: fleet-{n}
service: fleet-{n}
telemetry:
  errors:
    scrape:
      url: {url}
      ratio:
        numerator: {{metric: http_requests_total, match: {{code: "5.."}}}}
        denominator: {{metric: http_requests_total}}
    interval: 200ms
triggers:
  - name: errors above 10%
    signal: errors
    threshold: {{above: 0.1}}
steps:
  - name: back out
    run: ["true"]
"""


def fleet_targets(session: Session) -> None:
    target = session.root / "fleet"
    shutil.rmtree(target, ignore_errors=True)
    (target / "plans").mkdir(parents=True)
    session.cwd, session.ids = target, IdMap()
    server = TargetServer(bad={1}).__enter__()
    session.cleanups.append(lambda: server.__exit__(None, None, None))
    for n in range(3):
        text = PLAN.format(n=n, url=server.url(n))
        (target / "plans" / f"fleet-{n}.yaml").write_text(text, encoding="utf-8")
