"""Delivery metrics across runs: deployments, change failure rate, recovery times."""

from __future__ import annotations

__all__: list[str] = []
