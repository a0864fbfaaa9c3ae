"""Jinja2 in a sandbox. Templates see ``baseline``, ``run``, ``change``, ``env`` and ``secrets``.

A ``run:`` argv is rendered element by element; nothing rendered ever reaches a shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from backout.errors import TemplateError

SCOPE_NAMES = frozenset({"baseline", "run", "change", "env", "secrets"})
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def render_text(text: str, scope: Mapping[str, Any]) -> str:
    if not is_template(text):
        return text
    try:
        return _ENV.from_string(text).render(dict(scope))
    except UndefinedError as exc:
        raise TemplateError(
            f"template {text!r}: {exc.message}",
            hint="run `backout snapshot PLAN` to record baseline values, or fix the name",
        ) from exc
    except (TemplateSyntaxError, SecurityError) as exc:
        raise TemplateError(f"template {text!r}: {exc}") from exc


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (lists and mappings are walked, keys are not)."""
    if isinstance(value, str):
        return render_text(value, scope)
    if isinstance(value, list):
        return [render_value(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, scope) for key, item in value.items()}
    return value


def parse_error(text: str) -> str | None:
    """The syntax error in ``text`` as a message, or ``None`` when it parses."""
    try:
        _ENV.parse(text)
    except TemplateSyntaxError as exc:
        return exc.message or "syntax error"
    return None


def references(text: str) -> tuple[set[str], set[str]]:
    """(top-level names, baseline keys) a template uses; both empty for non-templates."""
    if not is_template(text) or parse_error(text):
        return set(), set()
    tree = _ENV.parse(text)
    names = {node.name for node in tree.find_all(nodes.Name) if node.ctx == "load"}
    keys: set[str] = set()
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == "baseline":
            keys.add(attr.attr)
    for item in tree.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == "baseline"
            and isinstance(item.arg, nodes.Const)
            and isinstance(item.arg.value, str)
        ):
            keys.add(item.arg.value)
    return names, keys


def walk_strings(
    value: Any, path: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string inside ``value`` with its path (for lint and error positions)."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in walk_strings(item, (*path, i))]
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in walk_strings(item, (*path, key))]
    return []
