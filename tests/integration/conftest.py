"""Real-service fixtures for integration tests (nginx, Prometheus, tiny HTTP backends);
they live in tests/services.py, which documents what each one yields."""

from __future__ import annotations

from tests.services import (  # noqa: F401
    http_backend,
    nginx,
    prometheus,
    prometheus_factory,
    prometheus_targets,
)
