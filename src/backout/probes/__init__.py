"""Read-only probes used by ``verify:`` checks and ``baseline:`` sources."""

from __future__ import annotations

from backout.plugins import Registry
from backout.probes.base import Check, Source, Verdict

# each module loads when a plan first uses its kind
CHECKS: Registry[Check] = Registry(
    "check",
    builtins={
        "http": "backout.probes.http:HttpCheck",
        "command": "backout.probes.command:CommandCheck",
        "file_hash": "backout.probes.files:FileHashCheck",
        "sql": "backout.probes.sql:SqlCheck",
        "fingerprint": "backout.probes.fingerprint:FingerprintCheck",
    },
)
SOURCES: Registry[Source] = Registry(
    "baseline source",
    builtins={
        "http": "backout.probes.http:HttpSource",
        "command": "backout.probes.command:CommandSource",
        "file_hash": "backout.probes.files:FileHashSource",
        "readlink": "backout.probes.files:ReadlinkSource",
        "sql": "backout.probes.sql:SqlSource",
        "fingerprint": "backout.probes.fingerprint:FingerprintSource",
        "alembic": "backout.probes.sql:AlembicSource",
        "sqitch": "backout.probes.sqitch:SqitchSource",
        "kubectl": "backout.probes.kube:KubectlSource",
        "helm": "backout.probes.kube:HelmSource",
        "argocd": "backout.probes.kube:ArgocdSource",
        "terraform": "backout.probes.terraform:TerraformSource",
    },
)

__all__ = ["CHECKS", "SOURCES", "Check", "Source", "Verdict"]
