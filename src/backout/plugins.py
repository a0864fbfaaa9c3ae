"""Named kinds (actions, checks, baseline sources) with their option models.

Built-ins register directly; third-party actions come from the ``backout.actions`` entry
point group. Two plugins with the same name is an error, never a silent override, and so
is an entry point that cannot be imported or names something other than a kind's class
(the error names the entry point and its package, never a traceback).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
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
    def __init__(self, label: str, group: str | None = None) -> None:
        self.label = label
        self.group = group
        self._items: dict[str, K] = {}
        self._loaded = group is None

    def register(self, item: K) -> K:
        if item.kind in self._items and self._items[item.kind] is not item:
            raise BackoutError(
                f"two {self.label}s are named {item.kind!r}",
                hint="rename one of the plugins; names must be unique",
            )
        self._items[item.kind] = item
        return item

    def _load_entry_points(self) -> None:
        if self._loaded or self.group is None:
            return
        self._loaded = True
        seen: dict[str, EntryPoint] = {}
        for ep in _group(self.group):  # names first: a clash whatever loads
            if ep.name in seen and seen[ep.name].value != ep.value:
                raise BackoutError(
                    f"two {self.label} plugins are named {ep.name!r}: "
                    f"{seen[ep.name].value} and {ep.value}",
                    hint="uninstall one of the packages or rename its entry point",
                )
            seen.setdefault(ep.name, ep)
        for ep in seen.values():
            cls, item = self._load(ep)
            existing = self._items.get(ep.name)
            if existing is None:
                self.register(item)
            elif type(existing) is not cls:
                raise BackoutError(
                    f"the {self.label} plugin {ep.value} reuses the built-in name {ep.name!r}",
                    hint="give the plugin's entry point another name",
                )

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
        self._load_entry_points()
        return self._items[name]

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[K]:
        self._load_entry_points()
        return iter([self._items[name] for name in sorted(self._items)])


def _what(target: object) -> str:
    """``a function``, ``a module``, ``an int``: what an entry point named instead."""
    name = type(target).__name__
    if callable(target) and not isinstance(target, type):
        name = "function"
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"
