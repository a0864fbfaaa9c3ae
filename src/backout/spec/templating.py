"""Jinja2 in a sandbox. Templates see ``baseline``, ``run``, ``change``, ``env`` and ``secrets``,
read-only.

A ``run:`` argv is rendered element by element; nothing rendered ever reaches a shell.
A template is code the plan's author wrote, so whatever goes wrong while rendering it (an
undefined name, a division by zero, the sandbox refusing a call) comes out as one
:class:`~backout.errors.TemplateError`: it can fail a step, never crash the run.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from backout.errors import TemplateError

SCOPE_NAMES = frozenset({"baseline", "run", "change", "env", "secrets", "environment"})
# What the engine puts in `run` (engine.runner.environment) and in `change` (nothing yet):
# a template naming any other key can never render.
RUN_KEYS = ("id", "plan", "service", "actor", "release", "environment")
CHANGE_KEYS: tuple[str, ...] = ()
# `run.get('id')` calls a method of the mapping; it does not name a key "get"
READ_METHODS = frozenset({"get", "items", "keys", "values"})
MAX_OUTPUT = 1024 * 1024  # characters one template may render to (an argv element is far less)
MAX_POWER_BITS = 1 << 16  # `9 ** (9 ** 9)` would compute for hours before printing anything
# a `%` conversion (`%-10s`, `%(name)5d`) or a `{…:…}` replacement field, for _check_format
_FORMAT_SPECS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d*)?|\{[^{}]*:[^{}]*\}")
# filters and str methods that build a value as large as a number they are given
SIZED_FILTERS = ("batch", "center", "format", "indent", "slice")
PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
SHOWN = 60  # characters of a template quoted in an error
UNDEFINED_HINT = "run `backout snapshot PLAN` to record baseline values, or fix the name"
SANDBOX_HINT = (
    "templates may read baseline, run, change, env and secrets, never change them "
    "or reach Python internals"
)
FAILED_HINT = "the template failed while rendering; check the values it uses"


class TooLarge(Exception):
    """A template asked for more output, or a larger number, than any plan needs."""


class _Environment(ImmutableSandboxedEnvironment):
    """The immutable sandbox (``.update()``, ``.append()`` … are refused), plus bounds on
    what exhausts memory or time before any output exists: ``*`` and ``**``, sizes passed
    to calls and filters (``'x'.center(10**9)``), and widths in format strings."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def _compile(self, source: str, filename: str) -> CodeType:
        with warnings.catch_warnings():  # Python's remarks on the generated code, not on
            warnings.simplefilter("ignore", SyntaxWarning)  # the template: noise on stderr
            return super()._compile(source, filename)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
        elif isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # the sandbox's spelling: a call's own keywords (obj=…) pass through
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # str.format arrives wrapped
        if isinstance(getattr(method, "__self__", None), str):
            _check_str_method(method.__self__, method.__name__, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: Any) -> None:
    if name in ("format", "format_map"):
        _check_format(text)
    elif name in PADDING_METHODS:
        _check_sizes(args, kwargs)


def _bounded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose size arguments are checked first (``center(10**9)`` …)."""

    @functools.wraps(function)  # keeps Jinja's pass_eval_context marker (slice has one)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_sizes(args[1:], kwargs)  # the first is the value filtered, or Jinja's context
        if function is _format_filter and isinstance(args[0], str):
            _check_format(args[0])
        return function(*args, **kwargs)

    return bounded


def _check_sizes(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and abs(value) > MAX_OUTPUT:
            raise TooLarge(f"{value} is larger than any template needs (at most {MAX_OUTPUT})")


def _check_format(text: str) -> None:
    """Widths and precisions in ``%`` and ``{}`` format strings, e.g. ``'%999999999s'``."""
    for spec in _FORMAT_SPECS.findall(text):
        _check_sizes(tuple(int(number) for number in re.findall(r"\d+", spec)), {})


def _check_power(base: Any, exponent: Any) -> None:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and base.bit_length() * exponent > MAX_POWER_BITS
    ):
        raise TooLarge(f"the power is too large (more than {MAX_POWER_BITS} bits)")


def _check_repeat(left: Any, right: Any) -> None:
    sequence, times = (left, right) if isinstance(right, int) else (right, left)
    if (
        isinstance(sequence, str | list | tuple)
        and isinstance(times, int)
        and len(sequence) * times > MAX_OUTPUT
    ):
        raise TooLarge(f"repeating that makes more than {MAX_OUTPUT} items")


_ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_format_filter = _ENV.filters["format"]
_ENV.filters.update({name: _bounded(_ENV.filters[name]) for name in SIZED_FILTERS})


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def render_text(text: str, scope: Mapping[str, Any]) -> str:
    """Render one template; every failure is a :class:`TemplateError` naming the template."""
    if not is_template(text):
        return text
    try:
        return _render(text, scope)
    except Exception as exc:  # the template is the author's code: its errors fail a step only
        message, hint = _explain(exc)
        raise TemplateError(f"template {_shown(text)}: {message}", hint=hint) from exc


def _render(text: str, scope: Mapping[str, Any]) -> str:
    """Render chunk by chunk, so output that grows without end stops at ``MAX_OUTPUT``."""
    parts: list[str] = []
    size = 0
    for chunk in _compiled(text).generate(dict(scope)):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise TooLarge(f"the output is longer than {MAX_OUTPUT} characters")
        parts.append(chunk)
    return "".join(parts)


@functools.lru_cache(maxsize=1024)  # a retried step or a check polled every second renders
def _compiled(text: str) -> Template:  # the same text again; templates render thread-safely
    return _ENV.from_string(text)


def _shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN else text[: SHOWN - 1] + "…")


def _explain(exc: Exception) -> tuple[str, str]:
    """What went wrong, and a hint, for each way rendering fails."""
    if isinstance(exc, UndefinedError):
        return str(exc.message), UNDEFINED_HINT
    if isinstance(exc, TemplateSyntaxError):
        return str(exc), "check the {{ }} and {% %} braces"
    if isinstance(exc, TooLarge):
        return str(exc), "templates render short values: a release, a path, an argument"
    if isinstance(exc, SecurityError):
        return str(exc), SANDBOX_HINT
    if isinstance(exc, RecursionError):
        return "it nests or recurses too deeply", FAILED_HINT
    if isinstance(exc, MemoryError):
        return "it needs more memory than there is", FAILED_HINT
    return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__), FAILED_HINT


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
    """Why ``text`` can never render (it does not parse or compile), or ``None``."""
    return _analyse(text)[0] if is_template(text) else None


@dataclass(frozen=True)
class Usage:
    """What a template reads: top-level names it does not define itself, and the keys it
    uses of each scope name (``baseline.release`` or ``baseline['release']``)."""

    names: frozenset[str] = frozenset()
    keys: tuple[tuple[str, str], ...] = ()  # (scope name, key)

    def keys_of(self, name: str) -> set[str]:
        return {key for scope, key in self.keys if scope == name}


def usage(text: str) -> Usage:
    """What ``text`` reads; empty for non-templates and templates that do not parse."""
    return _analyse(text)[1] if is_template(text) else Usage()


@functools.lru_cache(maxsize=4096)  # plans repeat templates ("{{ run.id }}"); lint asks twice
def _analyse(text: str) -> tuple[str | None, Usage]:
    """(why it can never render, or None; what it reads), parsing ``text`` once."""
    try:
        tree = _ENV.parse(text)
        _ENV.compile(tree)
        names = meta.find_undeclared_variables(tree) - set(_ENV.globals)
    except TemplateSyntaxError as exc:
        return exc.message or "syntax error", Usage()
    except SyntaxError as exc:  # Python's own limits on the compiled code (nested brackets)
        return exc.msg or "syntax error", Usage()
    except (RecursionError, MemoryError):
        return "it nests too deeply", Usage()
    return None, Usage(frozenset(names), tuple(_scope_keys(tree, names & SCOPE_NAMES)))


def _scope_keys(tree: nodes.Template, scoped: set[str]) -> list[tuple[str, str]]:
    called = {id(call.node) for call in tree.find_all(nodes.Call)}
    found = [
        (attr.node.name, attr.attr)
        for attr in tree.find_all(nodes.Getattr)
        if isinstance(attr.node, nodes.Name)
        and not (id(attr) in called and attr.attr in READ_METHODS)
    ]
    found += [
        (item.node.name, item.arg.value)
        for item in tree.find_all(nodes.Getitem)
        if isinstance(item.node, nodes.Name)
        and isinstance(item.arg, nodes.Const)
        and isinstance(item.arg.value, str)
    ]
    return [(name, key) for name, key in found if name in scoped]


def references(text: str) -> tuple[set[str], set[str]]:
    """(top-level names, baseline keys) a template uses; both empty for non-templates."""
    used = usage(text)
    return set(used.names), used.keys_of("baseline")


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
