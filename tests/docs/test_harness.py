"""The harness itself: a transcript in "another terminal", what it normalises, and a
command killed by a signal seen through the fork server as a terminal shows it."""

from __future__ import annotations

from pathlib import Path

from tests.docs.conftest import base_env
from tests.docs.transcripts import Session, normalise, part_blocks, parts, run_document

DOC = """\
A server in one terminal:

<!-- doctest: background -->
```text
$ while [ ! -e ready ]; do sleep 0.01; done; echo "the other terminal said $(cat ready)"
the other terminal said hello
$ echo done
done
```

and, in another, what it waits for:

```text
$ echo hello > ready; echo sent
sent
```

<!-- doctest: background -->
```text
$ echo never shown
something else
```

```text
$ true
```
"""


def test_a_background_transcript_runs_beside_the_next_one(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    session = Session(tmp_path, base_env(tmp_path))
    try:
        outcomes = list(run_document(doc, session, {}))
    finally:
        for cleanup in session.cleanups:
            cleanup()
    # the foreground block, then the background one it unblocked; the second background
    # block is compared once the block after it has run, and its output differs
    assert [(o.block.line, o.ok) for o in outcomes] == [
        (13, True),
        (4, True),
        (24, True),
        (19, False),
    ]
    assert "+ never shown" in outcomes[3].message


def test_readings_and_a_killed_command_are_normalised() -> None:
    lines = [
        "12:00:01 trigger fired errors for 1s: errors 0.2415 has been above 0.02 for 1.0 s "
        "(2 samples)",
        "green_errors: 12 of 40 (0.3) in the last 0.0 s; the odds that the rate is above 0.01 "
        "are 6.02e+10 to 1, past the 200 to 1 needed",
        "bash: line 3: 22190 Killed                  backout deploy plan.yaml",
    ]
    assert [text for _, text in normalise(lines)] == [
        "<TIME> trigger fired errors for 1s: errors <VALUE> has been above 0.02 for "
        "<DURATION> (<N> samples)",
        "green_errors: <N> of <N> (<VALUE>) in the last <DURATION>; the odds that the rate is "
        "above 0.01 are <ODDS> to 1, past the 200 to 1 needed",
        "Killed",
    ]


def test_the_fork_server_reports_a_signal_death_as_one(
    backout_bin: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, extra = backout_bin
    if not extra:  # BACKOUT_DOCS_SUBPROCESS=1: the real program, nothing to check here
        return
    session = Session(tmp_path, {**base_env(folder), **extra})
    plan = tmp_path / "plan.yaml"
    plan.write_text('plan: p\nsteps:\n  - name: a\n    run: ["true"]\n    timeout: 5s\n')
    result = session.script(
        f"BACKOUT_FAILPOINTS=step_started:1 backout run {plan} >/dev/null 2>&1; echo $?"
    )
    assert result.stdout.strip().splitlines()[-1] == "137", result.stdout


PARTS = """\
```text
$ echo one > shared; echo one
one
```

<!-- doctest: part=second -->
```text
$ cat shared 2>/dev/null || echo a folder of its own
a folder of its own
```
"""


def test_each_part_of_a_document_runs_on_its_own(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(PARTS)
    assert parts(doc) == ["", "second"]
    assert [b.line for b in part_blocks(doc, "second")] == [7]
    second = tmp_path / "second"
    second.mkdir()
    (tmp_path / "shared").write_text("one\n")  # the first part's file, not in this folder
    session = Session(second, base_env(tmp_path))
    outcomes = list(run_document(doc, session, {}, "second"))
    assert [(o.block.line, o.ok) for o in outcomes] == [(7, True)]


INTERRUPTED = """\
<!-- doctest: interrupt="ready" -->
```text
$ bash -c 'trap "echo stopped; exit 130" INT; echo ready; while :; do sleep 0.05; done'
ready
^C
stopped
$ echo $?
130
```
"""


def test_an_interrupt_is_a_ctrl_c_once_the_text_is_printed(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(INTERRUPTED)
    session = Session(tmp_path, base_env(tmp_path))
    session.timeout = 60
    outcomes = list(run_document(doc, session, {}))
    assert [o.ok for o in outcomes] == [True], outcomes[0].message
