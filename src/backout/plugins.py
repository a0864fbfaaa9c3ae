"""Named kinds (actions, checks, baseline sources) with their option models.

Built-ins register directly; third-party actions come from the ``backout.actions`` entry
point group. Two plugins with the same name is an error, never a silent override.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

from backout.errors import BackoutError


class Kind(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def Options(self) -> type[BaseModel]: ...


K = TypeVar("K", bound=Kind)


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
        seen: dict[str, str] = {}
        for ep in entry_points(group=self.group):
            if ep.name in seen and seen[ep.name] != ep.value:
                raise BackoutError(
                    f"two {self.label} plugins are named {ep.name!r}: "
                    f"{seen[ep.name]} and {ep.value}",
                    hint="uninstall one of the packages or rename its entry point",
                )
            seen[ep.name] = ep.value
            cls = ep.load()
            existing = self._items.get(ep.name)
            if existing is None:
                self.register(cls())
            elif type(existing) is not cls:
                raise BackoutError(
                    f"the {self.label} plugin {ep.value} reuses the built-in name {ep.name!r}",
                    hint="give the plugin's entry point another name",
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
