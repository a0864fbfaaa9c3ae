"""Read-only probes used by ``verify:`` checks and ``baseline:`` sources."""

from __future__ import annotations

from backout.plugins import Registry
from backout.probes.base import Check, Source, Verdict
from backout.probes.command import CommandCheck, CommandSource
from backout.probes.files import FileHashCheck, FileHashSource, ReadlinkSource
from backout.probes.fingerprint import FingerprintCheck, FingerprintSource
from backout.probes.http import HttpCheck, HttpSource
from backout.probes.kube import ArgocdSource, HelmSource, KubectlSource
from backout.probes.sqitch import SqitchSource
from backout.probes.sql import AlembicSource, SqlCheck, SqlSource
from backout.probes.terraform import TerraformSource

CHECKS: Registry[Check] = Registry("check")
SOURCES: Registry[Source] = Registry("baseline source")
for _check in (HttpCheck(), CommandCheck(), FileHashCheck(), SqlCheck(), FingerprintCheck()):
    CHECKS.register(_check)
for _source in (
    HttpSource(),
    CommandSource(),
    FileHashSource(),
    ReadlinkSource(),
    SqlSource(),
    FingerprintSource(),
    AlembicSource(),
    SqitchSource(),
    KubectlSource(),
    HelmSource(),
    ArgocdSource(),
    TerraformSource(),
):
    SOURCES.register(_source)

__all__ = ["CHECKS", "SOURCES", "Check", "Source", "Verdict"]
