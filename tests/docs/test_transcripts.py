"""Every ``$ backout …`` transcript in README.md and docs/*.md runs and prints what the
doc shows (see tests/docs/transcripts.py for the rules and BACKOUT_DOCS_UPDATE=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.setups import SETUPS
from tests.docs.transcripts import (
    Block,
    Session,
    blocks,
    part_blocks,
    parts,
    rewrite,
    run_document,
    updating,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Transcripts not run, each with its reason in the doc. A ceiling that only goes down: a
# doc given its fixture (tests/docs/setups.py) loses its skips, and this number with them.
# None is left: a wait is a setup moving the store's times, a Ctrl-C an `interrupt`, an
# outside service a stand-in started by a setup.
MAX_SKIPPED = 0


def transcripts(doc: Path) -> list[Block]:
    return [b for b in blocks(doc) if b.is_transcript]


# each part of a document (`doctest: part=NAME`) is a test of its own, so that xdist
# runs the parts of a long document side by side
RUNNABLE = [
    (doc, part)
    for doc in DOCS
    for part in parts(doc)
    if any(b.is_transcript and b.skip_reason is None for b in part_blocks(doc, part))
]


@pytest.mark.parametrize(
    ("doc", "part"),
    RUNNABLE,
    ids=[f"{doc.name}:{part}" if part else doc.name for doc, part in RUNNABLE],
)
def test_transcripts_print_what_the_doc_shows(doc: Path, part: str, session: Session) -> None:
    outcomes = list(run_document(doc, session, SETUPS, part))
    failed = [o for o in outcomes if not o.ok]
    if updating() and failed:
        rewrite(doc, failed)
    assert outcomes, f"{doc.name}: no block ran"
    assert not failed, "\n\n".join(o.message for o in failed)


def test_skipped_transcripts_are_few_and_say_why() -> None:
    all_blocks = [b for doc in DOCS for b in transcripts(doc)]
    skipped = [b for b in all_blocks if b.skip_reason is not None]
    listing = "\n".join(f"  {b.where}: {b.skip_reason}" for b in skipped)
    assert all(b.skip_reason for b in skipped), listing
    assert len(all_blocks) >= 80, "the transcripts are no longer found"
    assert len(skipped) <= MAX_SKIPPED, f"{len(skipped)} transcripts skipped:\n{listing}"


def test_transcripts_are_in_text_fences() -> None:
    # a ```console (or ```shell) block of `$ backout` lines would never run: the harness
    # runs ```text transcripts; commands without their output go in ```sh blocks
    hidden = [
        b.where
        for doc in DOCS
        for b in blocks(doc)
        if b.lang not in ("text", "sh", "bash", "ini", "toml", "yaml", "yml", "json", "python")
        and any(line.startswith("$ backout") for line in b.body)
    ]
    assert not hidden, f"transcripts in a fence the harness does not run: {hidden}"
