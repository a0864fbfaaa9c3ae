"""Read-only probes used by ``verify:`` checks and ``baseline:`` sources."""

from __future__ import annotations

from backout.plugins import Registry
from backout.probes.base import Check, Source, Verdict
from backout.probes.command import CommandCheck, CommandSource
from backout.probes.files import FileHashCheck, FileHashSource, ReadlinkSource
from backout.probes.http import HttpCheck, HttpSource

CHECKS: Registry[Check] = Registry("check")
SOURCES: Registry[Source] = Registry("baseline source")
for _check in (HttpCheck(), CommandCheck(), FileHashCheck()):
    CHECKS.register(_check)
for _source in (HttpSource(), CommandSource(), FileHashSource(), ReadlinkSource()):
    SOURCES.register(_source)

__all__ = ["CHECKS", "SOURCES", "Check", "Source", "Verdict"]
