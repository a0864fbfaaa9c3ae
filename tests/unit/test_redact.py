"""Secrets are hidden wherever they could appear: plain, encoded, or split by a line break."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from backout.redact import MASK, Redactor

SECRET = "hunter2-s3cr3t/pass+word"


def hidden_chars(original: str, redacted: str) -> int:
    """How many characters of ``original`` the mask replaced."""
    return len(original) - (len(redacted) - redacted.count(MASK) * len(MASK))


def test_plain_value_is_masked_everywhere() -> None:
    redact = Redactor([SECRET])
    text = f"token={SECRET} again {SECRET}."
    assert redact(text) == f"token={MASK} again {MASK}."


def test_no_secrets_means_no_change() -> None:
    assert Redactor()("anything at all") == "anything at all"
    assert Redactor([SECRET])("") == ""


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"Authorization: Basic "])
@pytest.mark.parametrize("suffix", [b"", b"x", b"xy", b":more"])
@pytest.mark.parametrize("encoder", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_in_any_alignment(prefix: bytes, suffix: bytes, encoder: object) -> None:
    assert callable(encoder)
    encoded = encoder(prefix + SECRET.encode() + suffix).decode()
    redacted = Redactor([SECRET])(f"header {encoded} end")
    assert MASK in redacted
    # all but the few characters shared with the neighbouring bytes are gone
    assert hidden_chars(f"header {encoded} end", redacted) >= len(SECRET) * 4 // 3 - 4
    assert SECRET.encode() not in _decodable(redacted)


def _decodable(text: str) -> bytes:
    """Whatever a reader could still decode from the redacted text's base64-looking words."""
    out = b""
    for word in text.replace(MASK, " ").split():
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                out += decoder(word + "=" * (-len(word) % 4))
            except ValueError:
                continue
    return out


def test_urlsafe_and_standard_base64_differ_and_both_are_masked() -> None:
    secret = "??>>??>>"  # encodes with '+' and '/' in standard base64
    standard = base64.b64encode(secret.encode()).decode()
    urlsafe = base64.urlsafe_b64encode(secret.encode()).decode()
    assert standard != urlsafe
    redact = Redactor([secret])
    for encoded in (standard, urlsafe):
        redacted = redact(encoded)
        assert redacted.startswith(MASK)
        assert len(redacted.strip("=")) <= len(MASK) + 1  # at most the padding-shared char


@pytest.mark.parametrize("encode", [lambda s: quote(s, safe=""), quote_plus])
def test_percent_encoded(encode: object) -> None:
    assert callable(encode)
    encoded = encode("p@ss w/rd&x=1")
    assert encoded != "p@ss w/rd&x=1"
    assert (
        Redactor(["p@ss w/rd&x=1"])(f"https://h/?pw={encoded}&a=b") == f"https://h/?pw={MASK}&a=b"
    )


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_hex(case: object) -> None:
    assert callable(case)
    encoded = case(SECRET.encode().hex())
    assert Redactor([SECRET])(f"dump: {encoded}") == f"dump: {MASK}"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_value_split_across_a_line_break(newline: str) -> None:
    wrapped = f"password={SECRET[:7]}{newline}{SECRET[7:]} done"
    assert Redactor([SECRET])(wrapped) == f"password={MASK} done"


def test_base64_split_across_a_line_break() -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()
    wrapped = encoded[:10] + "\n" + encoded[10:]
    assert SECRET.encode() not in _decodable(Redactor([SECRET])(wrapped).replace("\n", ""))


@pytest.mark.parametrize("short", ["", "a", "ab", "abc"])
def test_short_secrets_are_left_alone(short: str) -> None:
    text = "abc abcd a ab"
    assert Redactor([short])(text) == text


def test_four_characters_is_long_enough() -> None:
    assert Redactor(["abcd"])("x abcd y") == f"x {MASK} y"


def test_longest_secret_wins_when_one_contains_another() -> None:
    redact = Redactor(["pass", "password123"])
    assert redact("password123 and pass") == f"{MASK} and {MASK}"


def test_regex_characters_in_a_secret_are_literal() -> None:
    redact = Redactor(["a.b*c(d)"])
    assert redact("a.b*c(d) aXbbbc(d)") == f"{MASK} aXbbbc(d)"


def test_nested_json_values() -> None:
    redact = Redactor([SECRET])
    value = {
        "summary": f"used {SECRET}",
        "list": [1, None, True, f"x{SECRET}y", {"deep": [SECRET]}],
        SECRET: "keys are not values",
    }
    assert redact.value(value) == {
        "summary": f"used {MASK}",
        "list": [1, None, True, f"x{MASK}y", {"deep": [MASK]}],
        SECRET: "keys are not values",
    }
