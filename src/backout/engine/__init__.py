"""The engine: a run is a journalled state machine. Creating, executing, verifying and
resuming runs, deploy flows, leases, orphan takeover and workers."""
