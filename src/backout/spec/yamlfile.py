"""Any YAML file into a typed model, with every error pinned to file, line and column.

The plan loader adds kinds (``run:``, ``http:`` …) on top; policy files use this directly.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from backout.errors import Issue, PlanError
from backout.spec.source_map import SourceMap

M = TypeVar("M", bound=BaseModel)


def read_yaml(file: Path) -> Any:
    """Parse YAML keeping positions; unreadable or invalid files become a PlanError."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError([Issue(str(file), 0, 0, "-", "no such file", "check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([Issue(str(file), 0, 0, "-", f"cannot read: {exc}")]) from None
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = f"invalid YAML: {exc.problem or exc.context}"
        hint = "check indentation and quoting around this place"
        raise PlanError([Issue(str(file), line, col, "-", message, hint)]) from None


def to_plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): to_plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [to_plain(item) for item in node]
    return node


def dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "-"


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


def unknown_key_hint(key: str, allowed: list[str]) -> str:
    guess = difflib.get_close_matches(key, allowed, n=1)
    return f"did you mean {guess[0]!r}?" if guess else f"allowed keys: {', '.join(allowed)}"


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


def load_model(file: Path, model: type[M]) -> M:
    root = read_yaml(file)
    source = SourceMap(root)

    def issue(where: tuple[str | int, ...], message: str, hint: str = "") -> Issue:
        line, col = source.where(where)
        return Issue(str(file), line, col, dotted(where), message, hint)

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
