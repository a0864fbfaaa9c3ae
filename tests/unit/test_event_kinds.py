"""Journal event kinds have one home, `backout.kernel.events.EventKind`: every kind has a
description, docs/operations.md lists exactly the kinds there are, and every kind the
source journals is one of them. A new event without a description or docs fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from backout.engine import view
from backout.kernel.events import (
    CHECK_EVENTS,
    EVENT_DESCRIPTIONS,
    Event,
    EventKind,
    describe,
)
from backout.render import journal_lines

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "backout"
OPERATIONS = ROOT / "docs" / "operations.md"

# Kinds no code writes any more but kept so that journals written before still fold.
NO_LONGER_WRITTEN: frozenset[str] = frozenset()
# Where an Event is made from a kind passed on, not named: the journal's own append (its
# `kind` is typed EventKind, which mypy checks at every caller), the store reading rows and
# the API's client reading the events a server sends (rows the store read).
PASSED_ON = {
    ("src/backout/engine/journal.py", "kind"),
    ("src/backout/store/repo.py", "row.kind"),
    ("src/backout/client.py", "str(item['kind'])"),
}


def test_every_kind_has_a_description() -> None:
    assert set(EVENT_DESCRIPTIONS) == set(EventKind)
    for kind in EventKind:
        description = kind.description
        assert description.strip() == description, kind
        assert description, kind
        assert "\n" not in description, kind
        assert describe(kind.value) == description


def test_the_run_view_folds_every_kind() -> None:
    """A kind the engine cannot fold would fail the run the moment it is journalled."""
    assert set(view._HANDLERS) == {kind.value for kind in EventKind}


def test_a_kind_equals_the_string_the_store_keeps() -> None:
    for kind in EventKind:
        assert kind == kind.value
        assert f"{kind}" == kind.value
        assert {kind.value: 1}.get(kind) == 1
        assert EventKind(kind.value) is kind
        assert Event("run", 1, 0.0, kind).to_json()["kind"] == kind.value
        assert type(Event("run", 1, 0.0, kind).to_json()["kind"]) is str


def test_an_unknown_kind_is_shown_as_its_words() -> None:
    assert describe("from_a_newer_version") == "from a newer version"


def test_a_row_read_back_renders_like_the_event_written() -> None:
    """Stored rows carry plain strings; the journal view reads the same either way."""
    for kind in EventKind:
        written = Event("run", 1, 0.0, kind, step=0, attempt=1, data={"x": 1})
        stored = Event("run", 1, 0.0, kind.value, step=0, attempt=1, data={"x": 1})
        assert journal_lines([written]) == journal_lines([stored])
    lines = journal_lines([Event("run", 1, 0.0, "check_finished", step=0)])
    assert " check_finished check 1" in lines[0]
    # a checkpoint names a stage in its data, never a check
    assert EventKind.CHECKPOINT_STARTED not in CHECK_EVENTS


# --- the docs ----------------------------------------------------------------------------


def documented_kinds() -> list[str]:
    """The first column of the event table in the operations guide's journal section."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("\n## The journal\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "docs/operations.md: no event table under '## The journal'"
    kinds: list[str] = []
    for row in rows:
        first = row.split("|")[1]
        kinds += re.findall(r"`([^`]+)`", first)
    return kinds


def test_the_docs_list_every_kind_once() -> None:
    documented = documented_kinds()
    assert len(documented) == len(set(documented)), "a kind is listed twice"
    kinds = {kind.value for kind in EventKind}
    assert set(documented) - kinds == set(), "documented, but no EventKind"
    assert kinds - set(documented) == set(), "an EventKind docs/operations.md does not list"


# --- the source --------------------------------------------------------------------------


def _kind_arguments(call: ast.Call) -> list[ast.expr]:
    """The expressions a call passes as events' kinds, if it is a journal write: one (see
    :func:`_kind_argument`), or each first item of the ``(kind, …)`` tuples given to the
    journal's ``append_together`` and ``append_steps`` (several events, one transaction)."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in ("append_together", "append_steps"):
        # a tuple made elsewhere (a name, a starred list) is passed on: its kind is named,
        # and counted, where it is made (a step runner's ``_after``)
        return [arg.elts[0] for arg in call.args if isinstance(arg, ast.Tuple) and arg.elts]
    argument = _kind_argument(call)
    return [] if argument is None else [argument]


def _kind_argument(call: ast.Call) -> ast.expr | None:
    """The expression a call passes as an event's kind, if it is a journal write: the
    journal's ``append``, a watcher's ``note`` or the fault injector's ``_note`` (the same
    append), a step runner's ``_after`` (an event of a step's attempt), or an
    ``Event(...)``."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "_after":
        return call.args[1] if len(call.args) > 1 else None
    if isinstance(func, ast.Attribute) and (
        (func.attr == "append" and "journal" in ast.unparse(func.value))
        or (func.attr == "note" and "ctx" in ast.unparse(func.value))
        or (func.attr == "_note" and ast.unparse(func.value) == "self")
    ):
        return call.args[0] if call.args else None
    if isinstance(func, ast.Name) and func.id == "Event":
        if len(call.args) >= 4:
            return call.args[3]
        return next((k.value for k in call.keywords if k.arg == "kind"), None)
    return None


def _is_event_kind(node: ast.expr) -> bool:
    """``event.kind``, ``e.kind``, ``events[-1].kind``: the kind of a journal event."""
    if not (isinstance(node, ast.Attribute) and node.attr == "kind"):
        return False
    owner = node.value
    if isinstance(owner, ast.Subscript):
        owner = owner.value
    return isinstance(owner, ast.Name) and owner.id in ("event", "e", "events")


def _literals(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return list(node.elts)
    return [node]


class Found:
    def __init__(self) -> None:
        self.written: set[str] = set()  # the kinds journal writes name
        self.named: list[tuple[str, str, bool]] = []  # (where, kind, as a bare string)
        self.opaque: list[tuple[str, str]] = []  # (file, expression) of computed kinds

    def kind(self, where: str, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            self.named.append((where, node.value, True))
            return node.value
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "EventKind"
        ):
            member = getattr(EventKind, node.attr, None)
            value = member.value if isinstance(member, EventKind) else f"EventKind.{node.attr}"
            self.named.append((where, value, False))
            return value
        return None


@pytest.fixture(scope="module")
def found() -> Found:
    found = Found()
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "kernel" / "events.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                for argument in _kind_arguments(node):
                    kind = found.kind(where, argument)
                    if kind is None:
                        found.opaque.append((str(path.relative_to(ROOT)), ast.unparse(argument)))
                    else:
                        found.written.add(kind)
            elif isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(_is_event_kind(side) for side in sides):
                    for side in sides:
                        for literal in _literals(side):
                            found.kind(where, literal)
    return found


def test_every_kind_the_source_names_is_an_event_kind(found: Found) -> None:
    kinds = {kind.value for kind in EventKind}
    unknown = [f"{where}: {kind!r}" for where, kind, _ in found.named if kind not in kinds]
    assert unknown == [], "not an EventKind (add it, with a description and docs)"


def test_every_journal_write_names_its_kind(found: Found) -> None:
    """A kind computed at the call cannot be checked here: name an EventKind member."""
    assert set(found.opaque) <= PASSED_ON


def test_the_source_journals_every_kind(found: Found) -> None:
    """Each kind is written somewhere (so the scan does see the journal), and none is stale."""
    kinds = {kind.value for kind in EventKind}
    assert found.written <= kinds
    assert kinds - found.written == set(NO_LONGER_WRITTEN)


@pytest.mark.parametrize(
    "part", ["engine/", "triggers/watcher.py", "explain.py", "render.py", "demo/", "reports.py"]
)
def test_the_journal_layers_name_members_not_strings(found: Found, part: str) -> None:
    bare = [
        f"{where}: {kind!r}"
        for where, kind, string in found.named
        if string and where.startswith(f"src/backout/{part}")
    ]
    assert bare == [], "use the EventKind member"
