"""Named kinds (actions, checks, baseline sources) with their option models.

Built-ins are registered by name and ``module:Class`` (``Registry(…, builtins=…)``), or as
made objects (:meth:`Registry.register`); third-party kinds come from the registry's entry
point group (``backout.actions``, …). A kind's module is imported when a plan first uses
the kind, not when the registry is: ``backout validate`` of a plan of `run` steps loads
neither the HTTP action nor the database probes. Names are checked as soon as the registry
is asked anything: two plugins with the same name is an error, never a silent override,
and so is a plugin that reuses a built-in's name. An entry point that cannot be imported,
or names something other than a kind's class, is an error when its kind is first used
or every kind is listed (``backout catalog``); the error names the entry point and its
package, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, EntryPoints, entry_points
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from backout.errors import BackoutError


class Kind(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def Options(self) -> type[BaseModel]: ...


K = TypeVar("K", bound=Kind)


_INSTALLED: dict[tuple[str, ...], Any] = {}  # sys.path -> every entry point found on it


def _group(group: str) -> EntryPoints:
    """The installed entry points of ``group``. Every distribution's metadata is read once
    per process (and again only if ``sys.path`` changes): each registry used to read it all
    for its own group, about 12 ms each, four times on a `validate`."""
    path = tuple(sys.path)
    every = _INSTALLED.get(path)
    if every is None:
        _INSTALLED.clear()
        every = _INSTALLED[path] = entry_points()
    selected: EntryPoints = every.select(group=group)
    return selected


class Registry(Generic[K]):
    def __init__(
        self, label: str, group: str | None = None, builtins: Mapping[str, str] | None = None
    ) -> None:
        """``builtins``: the built-in kinds, name -> ``module:Class``; each module is
        imported when a plan first uses its kind."""
        self.label = label
        self.group = group
        self._items: dict[str, K] = {}
        self._builtins: dict[str, str] = dict(builtins or {})  # name -> "module:Class"
        self._plugins: dict[str, EntryPoint] = {}  # name -> entry point, loaded when used
        self._scanned = group is None

    def add_builtins(self, builtins: Mapping[str, str]) -> None:
        """Register built-in kinds, name -> ``module:Class``, each made when a plan first
        uses it (for a registry defined before its kinds' table)."""
        self._builtins.update(builtins)

    def register(self, item: K) -> K:
        if item.kind in self._items and self._items[item.kind] is not item:
            raise BackoutError(
                f"two {self.label}s are named {item.kind!r}",
                hint="rename one of the plugins; names must be unique",
            )
        self._items[item.kind] = item
        return item

    def _scan(self) -> None:
        """Read the names of the group's entry points (nothing is imported): a name given
        twice, or a built-in's name reused, is an error at once, whatever loads later."""
        if self._scanned or self.group is None:
            return
        self._scanned = True
        seen: dict[str, EntryPoint] = {}
        for ep in _group(self.group):
            if ep.name in seen and seen[ep.name].value != ep.value:
                raise BackoutError(
                    f"two {self.label} plugins are named {ep.name!r}: "
                    f"{seen[ep.name].value} and {ep.value}",
                    hint="uninstall one of the packages or rename its entry point",
                )
            seen.setdefault(ep.name, ep)
        for name, ep in seen.items():
            if self._builtin_target(name) in (None, ep.value):
                if name not in self._builtins and name not in self._items:
                    self._plugins[name] = ep
                continue
            raise BackoutError(
                f"the {self.label} plugin {ep.value} reuses the built-in name {name!r}",
                hint="give the plugin's entry point another name",
            )

    def _builtin_target(self, name: str) -> str | None:
        """``module:Class`` of the built-in ``name``, or None if no built-in has it."""
        if name in self._builtins:
            return self._builtins[name]
        item = self._items.get(name)
        if item is None:
            return None
        return f"{type(item).__module__}:{type(item).__qualname__}"

    def _made(self, name: str) -> K | None:
        """The kind ``name``, made on first use; None if there is none."""
        item = self._items.get(name)
        if item is not None:
            return item
        target = self._builtins.get(name)
        if target is not None:
            module, _, attr = target.partition(":")
            made: K = getattr(importlib.import_module(module), attr)()
            self._items[name] = made
            return made
        ep = self._plugins.get(name)
        if ep is None:
            return None
        _, made = self._load(ep)
        self._items[name] = made
        return made

    def _load(self, ep: EntryPoint) -> tuple[type, K]:
        """The entry point's class and an instance of it, or a BackoutError that says
        which entry point of which package is broken and what it should name."""
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unknown package"
        where = f"{self.label} plugin {ep.name!r} ({ep.value}, entry point of {dist})"
        expected = (
            f"a class with `kind = {ep.name!r}` and an `Options` pydantic model, "
            "made without arguments"
        )
        fix = f"fix or reinstall {ep.dist.name if ep.dist else 'the package'}, or uninstall it"
        try:
            target = ep.load()
        except Exception as exc:
            raise BackoutError(
                f"the {where} cannot be loaded: {type(exc).__name__}: {exc}",
                hint=f"{fix}; {ep.value} should name {expected}",
            ) from exc
        if not isinstance(target, type):
            problem = f"it names {_what(target)}"
        else:
            try:
                item: Any = target()
            except Exception as exc:
                problem = f"{target.__name__}() failed: {type(exc).__name__}: {exc}"
            else:
                kind = getattr(item, "kind", None)
                options = getattr(item, "Options", None)
                if not isinstance(kind, str):
                    problem = f"{target.__name__} has no `kind`"
                elif kind != ep.name:
                    problem = f"{target.__name__} has kind {kind!r}, not {ep.name!r}"
                elif not (isinstance(options, type) and issubclass(options, BaseModel)):
                    problem = f"{target.__name__}.Options is not a pydantic model"
                else:
                    return target, item
        raise BackoutError(
            f"the {where} is not a usable {self.label} class: {problem}",
            hint=f"{fix}; {ep.value} should name {expected}",
        )

    def get(self, name: str) -> K:
        self._scan()
        item = self._made(name)
        if item is None:
            raise KeyError(name)
        return item

    def names(self) -> list[str]:
        self._scan()
        return sorted({*self._items, *self._builtins, *self._plugins})

    def __contains__(self, name: object) -> bool:
        self._scan()
        return name in self._items or name in self._builtins or name in self._plugins

    def __iter__(self) -> Iterator[K]:
        """Every kind, each made (so a broken plugin is an error here)."""
        return iter([self.get(name) for name in self.names()])


def _what(target: object) -> str:
    """``a function``, ``a module``, ``an int``: what an entry point named instead."""
    name = type(target).__name__
    if callable(target) and not isinstance(target, type):
        name = "function"
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"
