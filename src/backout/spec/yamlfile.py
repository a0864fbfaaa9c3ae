"""Any YAML file into a typed model, with every error pinned to file, line and column.

The plan loader adds kinds (``run:``, ``http:`` …) on top; policy files use this directly.

Reading is bounded, because a plan file is input like any other: its size, its nesting,
what its aliases expand to and the integers in it all have limits, and whatever breaks
one becomes an :class:`~backout.errors.Issue` at the place that broke it, fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, DocumentStartEvent
from ruamel.yaml.nodes import MappingNode, SequenceNode
from ruamel.yaml.reader import Reader
from ruamel.yaml.resolver import VersionedResolver

try:  # libyaml's scanner and parser, through ruamel's own C extension (ruamel.yaml.clib)
    from _ruamel_yaml import CParser
except ImportError:  # pragma: no cover - a platform without its wheel: the pure parser
    CParser = None

from backout.errors import Issue, PlanError
from backout.spec.source_map import SourceMap

M = TypeVar("M", bound=BaseModel)

# A long plan is 10-30 KiB. Loading and linting cost about 20 s of CPU per MiB of steps,
# so the cap is where a file is still 10x any real plan and loads in a few seconds.
MAX_BYTES = 256 * 1024
MAX_DEPTH = 50  # real plans nest fewer than 10 levels; deeper ones exhaust the stack
# Aliases are shared while parsing but copied when the document becomes plain values: an
# "alias bomb" of a few hundred bytes expands to billions of values. Real plans reuse a
# few small blocks, far below this.
MAX_ALIAS_NODES = 10_000
YAML_HINT = "check indentation and quoting around this place"


class LimitError(MarkedYAMLError):
    """A document that is valid YAML but beyond what a plan may be; carries its own hint."""

    def __init__(self, problem: str, mark: Any, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


class BoundedComposer(Composer):
    """ruamel's composer, refusing nesting deeper than ``MAX_DEPTH``, aliases that expand to
    more than ``MAX_ALIAS_NODES`` values, and aliases that contain themselves."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # legal YAML; a warning on stderr helps nobody
        self.level = 0
        self.sizes: dict[Any, int] = {}  # node -> how many values it expands to
        self.expanded = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            self._count_alias(node, event)
            return node
        self.level += 1
        try:
            if self.level > MAX_DEPTH:
                raise LimitError(
                    f"nested more than {MAX_DEPTH} levels deep",
                    event.start_mark,
                    "a plan needs far fewer levels; check for stray [ or { characters",
                )
            node = super().compose_node(parent, index)
        finally:
            self.level -= 1
        self.sizes[node] = 1 + sum(self.sizes.get(child, 0) for child in _children(node))
        return node

    def _count_alias(self, node: Any, event: Any) -> None:
        if node not in self.sizes:  # its anchor is still being composed: it contains itself
            raise LimitError(
                f"alias *{event.anchor} refers to a value that contains it",
                event.start_mark,
                "a plan cannot be recursive; write the value out instead",
            )
        self.expanded += self.sizes[node]
        if self.expanded > MAX_ALIAS_NODES:
            raise LimitError(
                f"aliases expand to more than {MAX_ALIAS_NODES} values (an alias bomb?)",
                event.start_mark,
                "use fewer aliases (*name), or write the values out",
            )


def _children(node: Any) -> list[Any]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


class BoundedConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor; a value Python refuses to build (an integer beyond
    its digit limit, a date like 2024-02-30) becomes an error at that value."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ValueError as exc:
            raise LimitError(
                _value_problem(node, exc), node.start_mark, _value_hint(node)
            ) from None


def _value_problem(node: Any, exc: ValueError) -> str:
    if str(node.tag).endswith(":int"):
        digits = sum(char.isdigit() for char in str(node.value))
        limit = sys.get_int_max_str_digits()
        return f"an integer of {digits} digits is too long (at most {limit})"
    return f"cannot read this value: {exc}"


def _value_hint(node: Any) -> str:
    return "quote it to make it text" if str(node.value).strip() else YAML_HINT


def _parser() -> YAML:
    """ruamel's round-trip loader, pure Python (its scanner is most of the cost): what
    :func:`_load` falls back to for a document libyaml refuses, or without libyaml."""
    yaml = YAML(typ="rt")
    yaml.Composer = BoundedComposer
    yaml.Constructor = BoundedConstructor
    return yaml


class _CLoader:
    """libyaml scans and parses, in C; ruamel's bounded composer and its round-trip
    constructor build the same values, with the same lines and columns, as :func:`_parser`
    does (the whole read about 5x faster). Comments are not kept: nothing reads them."""

    comment_handling = None
    allow_duplicate_keys = False
    max_depth = 0  # ruamel's own limit, off: BoundedComposer keeps MAX_DEPTH
    yaml_version: Any = None  # of a %YAML directive, read by the resolver

    def __init__(self, text: str) -> None:
        self._parser = _VersionedEvents(CParser(text), self)
        self._scanner = self
        # ruamel's parts find each other through the loader's _resolver, _composer …
        self._resolver = VersionedResolver(loadumper=self)
        self._composer = BoundedComposer(loader=self)
        self._constructor = BoundedConstructor(loader=self)

    def load(self) -> Any:
        return self._constructor.get_single_data()


class _VersionedEvents:
    """libyaml's events, noting a document's ``%YAML`` version where ruamel's resolver
    looks for it (ruamel's pure scanner records it itself)."""

    def __init__(self, parser: Any, loader: _CLoader) -> None:
        self._events = parser
        self._loader = loader

    def check_event(self, *choices: Any) -> bool:
        return bool(self._events.check_event(*choices))

    def peek_event(self) -> Any:
        return self._events.peek_event()

    def get_event(self) -> Any:
        event = self._events.get_event()
        if isinstance(event, DocumentStartEvent):
            self._loader.yaml_version = event.version
        return event


def _load(text: str) -> Any:
    """The document through libyaml; a document it refuses is read again by ruamel's pure
    parser, which names the problem in its own (tested) words, or reads what libyaml's
    YAML 1.1 scanner refuses and YAML 1.2 allows."""
    if CParser is not None:
        try:
            return _CLoader(text).load()
        except YAMLError:
            pass
    return _parser().load(text)


def read_yaml(path: str | Path) -> Any:
    """Parse YAML keeping positions; unreadable, invalid or oversized files become a
    PlanError pinned to the place that broke a rule (the file named as given)."""
    file = os.fspath(path)
    text = read_text(path)
    _refuse_unprintable(file, text)
    try:
        return _load(text)
    except MarkedYAMLError as exc:
        raise PlanError([_marked_issue(file, exc)]) from None
    except YAMLError as exc:  # unmarked errors (the reader's): rare after the checks above
        raise PlanError([Issue(file, 1, 1, "-", f"invalid YAML: {exc}", YAML_HINT)]) from None


def read_text(path: str | Path) -> str:
    """The file as text, refusing what is not UTF-8 or larger than ``MAX_BYTES``. Errors
    name the file as given (``./plan.yaml`` stays ``./plan.yaml``)."""
    file = os.fspath(path)
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise PlanError([Issue(file, 0, 0, "-", "no such file")]) from None
    except IsADirectoryError:
        raise PlanError([Issue(file, 0, 0, "-", "is a folder, not a file")]) from None
    except OSError as exc:
        raise PlanError([Issue(file, 0, 0, "-", f"cannot read: {exc.strerror}")]) from None
    if len(data) > MAX_BYTES:
        message = f"the file is larger than {MAX_BYTES // 1024} KiB, the most a plan may be"
        hint = "a plan is a page or two; keep large data in files the plan points to"
        raise PlanError([Issue(file, 1, 1, "-", message, hint)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data[: exc.start].decode("utf-8"))
        message = f"byte 0x{data[exc.start]:02x} is not valid UTF-8"
        raise PlanError([Issue(file, line, col, "-", message, "save the file as UTF-8")]) from None


def _refuse_unprintable(file: str, text: str) -> None:
    """YAML forbids control characters; ruamel's own error has no line or column."""
    found = Reader.NON_PRINTABLE.search(text)
    if found is None:
        return
    code = ord(found.group())
    kind = "control character" if code < 0x20 or 0x7F <= code <= 0x9F else "character"
    escape = f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
    line, col = _position(text[: found.start()])
    message = f"{kind} U+{code:04X} is not allowed"
    hint = f'delete it; to mean it, write the escape "{escape}" inside double quotes'
    raise PlanError([Issue(file, line, col, "-", message, hint)])


def _position(before: str) -> tuple[int, int]:
    """1-based line and column of the character that follows ``before``."""
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def _marked_issue(file: str, exc: MarkedYAMLError) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    if isinstance(exc, LimitError):
        return Issue(file, line, col, "-", str(exc.problem), exc.hint)
    problem = " ".join(str(exc.problem or exc.context).split())  # one line per issue
    return Issue(file, line, col, "-", f"invalid YAML: {problem}", YAML_HINT)


def to_plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): to_plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [to_plain(item) for item in node]
    return node


def dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        name = _printable(str(part))
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text or "-"


def _printable(key: str) -> str:
    """A key as it can be shown on one line: U+2028 or a tab inside it is escaped."""
    return key if key.isprintable() else repr(key)[1:-1]


def error_message(error: Any) -> str:
    message = str(error["msg"])
    return message[len("Value error, ") :] if message.startswith("Value error, ") else message


def type_hint(error: Any) -> str:
    kind = str(error["type"])
    if kind.startswith("literal"):
        return "use one of the values listed"
    if kind in ("list_type", "dict_type", "model_type"):
        return "check the indentation and the shape of this value"
    if kind == "string_type":
        return "quote the value to make it text, e.g. '5' instead of 5"
    return ""


def unknown_key_hint(key: str, allowed: list[str], listed: str = "allowed keys") -> str:
    """ "did you mean 'x'?" for a near miss, else the allowed names under ``listed``."""
    import difflib  # only for a plan with an unknown key

    guess = difflib.get_close_matches(key, allowed, n=1)
    return f"did you mean {guess[0]!r}?" if guess else f"{listed}: {', '.join(allowed)}"


def model_fields_at(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The keys allowed at ``path`` inside ``model`` (following nested models)."""
    current: Any = model
    for part in path:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            continue
        field = current.model_fields.get(part)
        annotation = field.annotation if field else None
        current = next(
            (
                arg
                for arg in getattr(annotation, "__args__", (annotation,))
                if isinstance(arg, type) and issubclass(arg, BaseModel)
            ),
            None,
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def load_model(path: str | Path, model: type[M]) -> M:
    """A YAML file as ``model``; every problem an Issue naming the file as given."""
    root = read_yaml(path)
    source = SourceMap(root)

    def issue(where: tuple[str | int, ...], message: str, hint: str = "") -> Issue:
        line, col = source.where(where)
        return Issue(os.fspath(path), line, col, dotted(where), message, hint)

    if not isinstance(root, dict):
        raise PlanError([issue((), "expected a mapping of keys")])
    try:
        return model.model_validate(to_plain(root))
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            where = tuple(error["loc"])
            if error["type"] == "extra_forbidden":
                allowed = model_fields_at(model, where[:-1])
                issues.append(
                    issue(
                        where,
                        f"unknown key {where[-1]!r}",
                        unknown_key_hint(str(where[-1]), allowed),
                    )
                )
            else:
                issues.append(issue(where, error_message(error), type_hint(error)))
        raise PlanError(sorted(issues, key=lambda i: (i.line, i.col))) from None
