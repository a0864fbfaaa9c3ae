"""The sample service and plan behind ``backout demo``."""

from __future__ import annotations

from backout.demo.scenario import run_demo

__all__ = ["run_demo"]
