"""Secret redaction: a value is hidden wherever it could appear, also encoded or split.

Covers the plain value, base64 (standard and URL-safe, any alignment), percent-encoding,
hex, and the value split across line breaks (as wrapped terminal output does).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 4


def _encodings(secret: str) -> set[str]:
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), raw.hex(), raw.hex().upper()}
    for shift in range(3):
        padded = b"\0" * shift + raw
        for encoder in (base64.b64encode, base64.urlsafe_b64encode):
            text = encoder(padded).decode().rstrip("=")
            # drop the characters that depend on the padding bytes or the next data
            start = (shift * 4 + 2) // 3
            end = len(text) - (1 if (len(padded) % 3) else 0)
            if end - start >= MIN_SECRET_LENGTH:
                forms.add(text[start:end])
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class Redactor:
    """Callable that masks every known secret in a string."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = sorted(
            {form for s in secrets if len(s) >= MIN_SECRET_LENGTH for form in _encodings(s)},
            key=len,
            reverse=True,
        )
        # between any two characters a wrapped line may break: allow \r?\n there
        patterns = [r"(?:\r?\n)?".join(re.escape(ch) for ch in form) for form in forms]
        self._pattern = re.compile("|".join(patterns)) if patterns else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        return value
