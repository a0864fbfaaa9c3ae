"""One HTTP GET whose failures are values: a source turns them into readings."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backout.telemetry.base import Status

if TYPE_CHECKING:
    import httpx


@functools.cache
def client() -> httpx.Client:
    """One pooled client per process: a new one costs tens of milliseconds (TLS setup),
    too much to pay every second, and keep-alive is what real clients do too."""
    import httpx

    return httpx.Client()


@dataclass(frozen=True)
class Failure:
    status: Status
    detail: str


def get(
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response | Failure:
    """The response (any status code), or why there is none: ``timeout`` or ``error``."""
    import httpx

    try:
        return client().get(url, headers=dict(headers or {}), params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        return _failure(url, timeout, exc)


async def aget(
    client: httpx.AsyncClient,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response | Failure:
    """:func:`get` on an asyncio client (many watches sharing one connection pool)."""
    import httpx

    try:
        return await client.get(url, headers=dict(headers or {}), params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        return _failure(url, timeout, exc)


def _failure(url: str, timeout: float, exc: httpx.HTTPError) -> Failure:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return Failure("timeout", f"GET {url}: no answer within {timeout:g}s")
    return Failure("error", f"GET {url}: {type(exc).__name__}: {exc}")
