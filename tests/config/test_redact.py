"""The one definition of what a secret looks like: registered values and secret-looking pairs."""

from __future__ import annotations

import secrets

import pytest

from config.redact import MIN_SECRET_CHARS, is_secret_key, register_secret, scrub


def fresh(prefix: str) -> str:
    """A value no other test registered, so a pass here is this test's registration."""
    return f"{prefix}{secrets.token_hex(6)}"


def test_a_registered_value_is_removed_even_bare() -> None:
    key, token = fresh("key"), fresh("tok")
    echoed = f"Incorrect `api_key` or `access_token`. (received: {key}:{token})"
    assert scrub(echoed) == echoed  # unknown values with no key around them: nothing to see
    register_secret(key, token)
    assert scrub(echoed) == "Incorrect `api_key` or `access_token`. (received: ***:***)"
    assert scrub(f"{token}{token} and {key}") == "****** and ***"


def test_a_value_containing_another_is_removed_whole() -> None:
    short = fresh("s")
    register_secret(short, short + "-longer")
    assert scrub(f"x {short}-longer y") == "x *** y"


def test_short_and_missing_values_are_not_registered() -> None:
    tiny = "q" * (MIN_SECRET_CHARS - 1)
    register_secret(tiny, "secret", None, "")  # "secret": a test's dummy api_secret
    assert scrub(f"the word {tiny} stays") == f"the word {tiny} stays"
    assert scrub("api_secret=abc") == "api_secret=***"  # the key name is left alone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("access_token=abc123", "access_token=***"),
        ("url ?api_key=k&x=1", "url ?api_key=***&x=1"),
        ("Authorization: token key:sec", "Authorization: token ***"),
        ("Authorization: Bearer abc", "Authorization: Bearer ***"),
        ("{'api_secret': 'x y'}", "{'api_secret': '***'}"),
        ('{"password": "p"}', '{"password": "***"}'),
        ('json "token=\\"***\\""', 'json "token=\\"***\\""'),  # already redacted: unchanged
        ("nothing to hide: 5 orders", "nothing to hide: 5 orders"),
    ],
)
def test_secret_looking_pairs_are_masked(text: str, expected: str) -> None:
    assert scrub(text) == expected
    assert scrub(scrub(text)) == expected


def test_secret_keys() -> None:
    assert is_secret_key("access_token") and is_secret_key("X-Api-Secret")
    assert is_secret_key("Authorization") and not is_secret_key("symbol")
