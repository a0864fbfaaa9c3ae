"""A sender over HTTP (httpx): one client per send, so connections are reused across
deliveries; the delivery key goes out as ``Idempotency-Key``; ``Retry-After`` is kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backout.channels.base import ChannelOptions, Delivery, Receipt, Sender, http_error

if TYPE_CHECKING:
    import httpx


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a 429 or 503 asks the sender to wait (``Retry-After: 30``), if it says."""
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class HttpSender(Sender):
    def __init__(self, options: ChannelOptions) -> None:
        import httpx

        headers = {"Accept": "application/json"}
        if options.token:
            headers["Authorization"] = f"Bearer {options.token}"
        self.client = httpx.Client(base_url=options.url, headers=headers, timeout=options.timeout)

    def send_json(
        self, delivery: Delivery, method: str, path: str, body: dict[str, object]
    ) -> tuple[Receipt, dict[str, object]]:
        """Send ``body``; a receipt (not ok on a transport error or a non-2xx answer) and
        the answer's JSON object (empty when it has none)."""
        import httpx

        try:
            response = self.client.request(
                method, path, json=body, headers={"Idempotency-Key": delivery.key}
            )
        except httpx.HTTPError as exc:
            return Receipt(False, f"{type(exc).__name__}: {exc}"), {}
        if not 200 <= response.status_code < 300:
            error = http_error(response.status_code, response.text)
            return Receipt(False, error, retry_after=retry_after(response)), {}
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        return Receipt(True), answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        self.client.close()
