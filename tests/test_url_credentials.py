"""Masking URL passwords in any text (arbitrage.url_credentials), and the log filter that applies it."""

from __future__ import annotations

import logging

import pytest

from arbitrage.config import parse_config
from arbitrage.ops.logs import RedactingFilter, secrets_from_env
from arbitrage.url_credentials import mask_url_credentials, url_passwords

MASKED = [
    ("redis://:pw-1234@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("redis://default:pw-1234@127.0.0.1:6379/0", "redis://default:***@127.0.0.1:6379/0"),
    ("rediss://user:pw-1234@cache.internal:6380", "rediss://user:***@cache.internal:6380"),
    ("postgresql://arb:PASSWORD@db:5432/arb", "postgresql://arb:***@db:5432/arb"),
    ("postgres://arb:p%40ss@db/arb?schema=x", "postgres://arb:***@db/arb?schema=x"),
    # An unencoded '@' in the password: libpq and urllib split it differently; all of it is masked.
    ("postgresql://arb:p@ss@db/arb", "postgresql://arb:***@db/arb"),
    (
        "postgresql://arb@db/arb?password=pw-1234&sslmode=disable",
        "postgresql://arb@db/arb?password=***&sslmode=disable",
    ),
    ("postgresql://db/arb?sslpassword=pw-1234", "postgresql://db/arb?sslpassword=***"),
    ("host=db user=arb password=pw-1234 dbname=arb", "host=db user=arb password=*** dbname=arb"),
    # Inside messages and reprs.
    (
        "starting arb-1: ledger postgresql://arb:pw-1234@127.0.0.1:5432/test, ticks 5",
        "starting arb-1: ledger postgresql://arb:***@127.0.0.1:5432/test, ticks 5",
    ),
    ("found 'mysql://arb:pw-1234@db/arb'", "found 'mysql://arb:***@db/arb'"),
    ("a redis://:x1@h/0 and b postgresql://u:y2@h/d", "a redis://:***@h/0 and b postgresql://u:***@h/d"),
]

UNCHANGED = [
    "sqlite:///data/ledger.sqlite3",
    "postgresql://postgres@127.0.0.1:5432/test",
    "redis://127.0.0.1:6379/0",
    "http://127.0.0.1:8080/health",
    "https://api.telegram.org",
    "venue upbit 127.0.0.1:8765 answered in 12 ms",
    "user@example.com wrote: ok",
    "postgresql://arb:@db/arb",  # an empty password hides nothing
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_passwords_are_masked(text: str, expected: str) -> None:
    assert mask_url_credentials(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_text_without_a_password_is_unchanged(text: str) -> None:
    assert mask_url_credentials(text) == text


@pytest.mark.parametrize(
    ("url", "passwords"),
    [
        ("postgresql://arb:p%40ss-1@db/arb", ["p%40ss-1", "p@ss-1"]),
        ("redis://:pw-1234@h:6379/0", ["pw-1234"]),
        ("postgresql://db/arb?password=q-5678", ["q-5678"]),
        ("postgresql://db/arb", []),
        (None, []),
    ],
)
def test_url_passwords_written_and_decoded(url: str | None, passwords: list[str]) -> None:
    assert url_passwords(url) == passwords


def test_log_filter_masks_url_passwords_and_the_configs_passwords_alone() -> None:
    config = parse_config(
        {
            "venues": {"a": {"exchange": "mock", "quote": "KRW"}, "b": {"exchange": "mock", "quote": "USDT"}},
            "fx": {"source": "fixed"},
            "storage": {"url": "postgresql://arb:pg%2Fsecret-1@db/arb"},
            "redis": {"url": "redis://:rd-secret-2@h:6379/0"},
        }
    )
    secrets = secrets_from_env(config, {})
    assert {"pg%2Fsecret-1", "pg/secret-1", "rd-secret-2"} <= set(secrets)
    redactor = RedactingFilter(secrets)
    record = logging.LogRecord(
        "arbitrage.live_loop",
        logging.ERROR,
        __file__,
        1,
        "ledger %s failed: auth for %s (password %s)",
        ("postgresql://arb:pg%2Fsecret-1@db/arb", "redis://x:other-3@h", "pg/secret-1"),
        None,
    )
    assert redactor.filter(record)
    assert record.getMessage() == (
        "ledger postgresql://arb:***@db/arb failed: auth for redis://x:***@h (password ***)"
    )
