"""Post-incident reports drafted from a run's journal (``backout report``)."""

from __future__ import annotations

__all__: list[str] = []
