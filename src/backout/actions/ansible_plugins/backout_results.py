"""Ansible callback plugin shipped with backout: the ``ansible`` action's structured results.

Ansible loads it from this folder (``ANSIBLE_CALLBACK_PLUGINS``) when the action enables it
(``ANSIBLE_CALLBACKS_ENABLED=backout_results``); it is not imported by backout. It leaves
the screen output to the usual callback and writes one JSON file, at the path in
``BACKOUT_ANSIBLE_RESULTS``, when the playbook ends:

    {"hosts": {HOST: {"ok": N, "changed": N, "failed": N, "unreachable": N,
                      "skipped": N, "rescued": N, "ignored": N}},
     "failures": [{"host": H, "task": T, "message": M, "unreachable": bool}]}

ansible-core ships no JSON callback since 2.11 (``json`` moved to the ansible.posix
collection), so the action brings its own: it needs nothing but ansible-core.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase  # type: ignore[import-untyped,import-not-found,unused-ignore]

DOCUMENTATION = """
    name: backout_results
    type: aggregate
    short_description: per-host results for backout's ansible action
    description:
      - Writes per-host stats and the failed tasks as JSON to $BACKOUT_ANSIBLE_RESULTS.
    requirements:
      - enable in callbacks_enabled
"""
MAX_FAILURES = 50
MAX_MESSAGE = 500


def _part(result: Any, name: str) -> Any:
    """``result.host``/``.task``/``.result`` (ansible-core 2.19+) or the older ``_host``…"""
    value = getattr(result, name, None)
    return value if value is not None else getattr(result, f"_{name}", None)


class CallbackModule(CallbackBase):  # type: ignore[misc,unused-ignore]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "backout_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: list[dict[str, Any]] = []

    def _failure(self, result: Any, unreachable: bool) -> None:
        if len(self.failures) >= MAX_FAILURES:
            return
        data = _part(result, "result") or {}
        message = data.get("msg") or data.get("stderr") or data.get("reason") or ""
        self.failures.append(
            {
                "host": _part(result, "host").get_name(),
                "task": _part(result, "task").get_name(),
                "message": str(message)[:MAX_MESSAGE],
                "unreachable": unreachable,
            }
        )

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            self._failure(result, unreachable=False)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._failure(result, unreachable=True)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        path = os.environ.get("BACKOUT_ANSIBLE_RESULTS")
        if not path:
            return
        hosts = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            hosts[host] = {
                key: int(summary.get(key, 0))
                for key in (
                    "ok",
                    "changed",
                    "failures",
                    "unreachable",
                    "skipped",
                    "rescued",
                    "ignored",
                )
            }
            hosts[host]["failed"] = hosts[host].pop("failures")
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"hosts": hosts, "failures": self.failures}, out)
