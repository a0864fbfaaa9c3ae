"""What every layer shares, and nothing else: run and step states with their transition
rules (:mod:`.states`), the journal's event record (:mod:`.events`), plan durations
(:mod:`.durations`) and the option types that actions, probes, telemetry sources and
triggers all build on (:mod:`.options`).

The kernel imports nothing of ``backout`` but :mod:`backout.errors`, so every layer may
import it without pulling in another; an import-linter contract keeps it so.
"""
