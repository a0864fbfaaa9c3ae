"""Durations as plans write them, and back."""

from __future__ import annotations

import pytest

from backout.kernel.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        (" 3 m ", 180.0),
        ("7", 7.0),
        (7, 7.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["10 parsecs", "soon", "", "1d", "-5s", "5 s s", "ms", None])
def test_parse_rejects_with_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a number with ms, s, m or h"):
        parse_duration(bad)


def test_negative_numbers_are_rejected() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(-1)


@pytest.mark.parametrize("flag", [True, False])
def test_booleans_are_not_durations(flag: bool) -> None:
    with pytest.raises(ValueError, match="expected a duration like 500ms"):
        parse_duration(flag)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (0.001, "1ms"), (10.0, "10s"), (90.0, "90s"), (120.0, "2m"), (7200.0, "2h")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == seconds
