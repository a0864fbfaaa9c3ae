"""Named setups a document's blocks ask for with ``<!-- doctest: setup=NAME -->``.

Each takes the document's session and prepares its working folder (and may move into a
new one); what a reader would have done before the block, done quietly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.docs.transcripts import IdMap, Session, Setup

ROOT = Path(__file__).resolve().parents[2]

SHOP = """\
mkdir -p releases/v1 releases/v2 bin
echo "shop v1" > releases/v1/VERSION
echo "shop v2" > releases/v2/VERSION
ln -sfn v1 releases/current
printf '#!/bin/sh\\necho "restarted $1: $(cat releases/current/VERSION)"\\n' > bin/restart
chmod +x bin/restart
"""


def quietly(session: Session, script: str) -> None:
    result = session.script(script)
    if result.returncode != 0:
        raise AssertionError(f"setup failed (exit {result.returncode}):\n{script}\n{result.stdout}")


def folder(name: str) -> Setup:
    """Start over in an empty folder ROOT/NAME: a reader's fresh terminal, no store."""

    def setup(session: Session) -> None:
        target = session.root / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        session.cwd = target
        session.ids = IdMap()  # a new store: the doc may reuse its ids

    return setup


def shop(session: Session) -> None:
    """The README's toy service: two releases, ``current`` -> v1, ``bin/restart``."""
    quietly(session, SHOP)


def snapshot_then_deploy_v2(session: Session) -> None:
    """The baseline recorded with v1 live, then v2 deployed (``backout.yaml`` exists)."""
    quietly(session, "backout snapshot backout.yaml >/dev/null && ln -sfn v2 releases/current")


def backout_now(session: Session) -> None:
    """``backout run backout.yaml``, as the text before the block says to."""
    quietly(session, "backout run backout.yaml >/dev/null")


def examples(session: Session) -> None:
    """The plans of examples/ copied into the working folder."""
    for path in (ROOT / "examples").glob("*.yaml"):
        shutil.copy(path, session.cwd / path.name)


SETUPS: dict[str, Setup] = {
    "readme-top": lambda s: (folder("top")(s), shop(s)),  # type: ignore[func-returns-value]
    "tutorial": folder("tutorial"),
    "fresh": folder("fresh"),
    "shop": shop,
    "shop-v2-deployed": snapshot_then_deploy_v2,
    "examples": examples,
    "backout-now": backout_now,
}
