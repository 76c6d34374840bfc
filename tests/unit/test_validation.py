"""Unit tests for vutf_cli.domain.validation."""

from __future__ import annotations

import string
import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vutf_cli.domain.validation import (
    ALL_SCOPES,
    MAX_DURATION,
    normalize_email,
    normalize_scopes,
    parse_duration,
    parse_time_spec,
    scope_grants,
    validate_full_name,
    validate_username,
)
from vutf_cli.errors import ExitCode, InvalidInput

# --- username ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bob", "Alice_01", "a-b", "x" * 100, "___", "0-9"])
def test_valid_usernames(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "ab", "x" * 101, "bob smith", "bob!", "b\u00f6b", "bob\n", "\u0661\u0662\u0663", "a.b"],
)
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid username") as info:
        validate_username(name)
    assert info.value.exit_code == ExitCode.USAGE


def test_username_error_escapes_control_characters() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_username("evil\x1b[31mred")
    message = info.value.message
    assert "\x1b" not in message
    assert "\\x1b" in message


def test_username_error_truncates_huge_values() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_username("!" * 10_000)
    assert len(info.value.message) < 300
    assert "10000 characters" in info.value.message


@given(st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=3, max_size=100))
def test_username_property_valid(name: str) -> None:
    assert validate_username(name) == name


@given(
    st.text(min_size=3, max_size=20).filter(
        lambda s: any(
            not (c.isascii() and (c.isalnum() or c in "_-"))
            for c in unicodedata.normalize("NFKC", s)
        )
    )
)
def test_username_property_rejects_other_characters(name: str) -> None:
    # What NFKC does not make [A-Za-z0-9_-] (full-width letters it does: see below).
    with pytest.raises(InvalidInput):
        validate_username(name)


# --- email ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice@example.org", "alice@example.org"),
        ("  Alice.Smith+tag@Example.CO.uk \n", "alice.smith+tag@example.co.uk"),
        ("x@a-b.c0", "x@a-b.c0"),
        ("o'brien@xn--bcher-kva.example", "o'brien@xn--bcher-kva.example"),
        ("a" * 64 + "@example.org", "a" * 64 + "@example.org"),
    ],
)
def test_valid_emails(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "alice",
        "alice@",
        "@example.org",
        "alice@@example.org",
        "a@b@example.org",
        "alice@localhost",
        "alice@example..org",
        "alice@-example.org",
        "alice@example-.org",
        "alice@exa_mple.org",
        "alice@b\u00fccher.example",
        "al ice@example.org",
        "alice@exam\tple.org",
        "ali\x00ce@example.org",
        "ali\x1bce@example.org",
        "a" * 65 + "@example.org",
        "a@" + ("b" * 62 + ".") * 4 + "org",  # over 254 characters
        "alice@example.org.",
        "alice@" + "a" * 64 + ".org",
    ],
)
def test_invalid_emails(raw: str) -> None:
    with pytest.raises(InvalidInput, match="invalid email address") as info:
        normalize_email(raw)
    assert "\x00" not in info.value.message
    assert "\x1b" not in info.value.message


def test_email_length_limit_is_254() -> None:
    domain = ".".join(["b" * 61] * 3) + ".ccc"
    address = "a" * 64 + "@" + domain
    assert len(address) == 254
    assert normalize_email(address) == address
    with pytest.raises(InvalidInput, match="254"):
        normalize_email(address[:-1] + "cc")


# --- full name ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Alice Smith",
        "Jos\u00e9 \u00c1lvarez",
        "\u5c71\u7530 \u592a\u90ce",
        "x" * 255,
        "\u05d3\u05d5\u05d3",
    ],
)
def test_valid_full_names(name: str) -> None:
    assert validate_full_name(name) == name


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_full_name_is_none(empty: str | None) -> None:
    assert validate_full_name(empty) is None


@pytest.mark.parametrize(
    "name",
    [
        "a\x00b",
        "red\x1b[31m",
        "tab\there",
        "new\nline",
        "del\x7f",
        "c1\x85",
        "c1\x9b",
        "rtl\u202eoverride",
        "ls\u2028sep",
    ],
)
def test_full_name_rejects_control_characters(name: str) -> None:
    with pytest.raises(InvalidInput, match="control characters") as info:
        validate_full_name(name)
    assert name not in info.value.message
    assert "\x1b" not in info.value.message


def test_full_name_too_long() -> None:
    with pytest.raises(InvalidInput, match="255"):
        validate_full_name("x" * 256)


# --- scopes ----------------------------------------------------------------------


def test_all_scopes_is_the_documented_set() -> None:
    expected = {"read", "write", "delete", "admin", "*"}
    for resource in ("targets", "sessions", "users", "api_keys"):
        expected |= {f"{resource}:{a}" for a in ("read", "write", "delete", "*")}
    assert expected == ALL_SCOPES
    assert len(ALL_SCOPES) == 21


def test_normalize_scopes_strips_dedupes_sorts() -> None:
    result = normalize_scopes([" write", "read ", "read", "users:*", "write"])
    assert result == {"read": True, "users:*": True, "write": True}
    assert list(result) == ["read", "users:*", "write"]


def test_normalize_scopes_empty() -> None:
    assert normalize_scopes([]) == {}
    assert normalize_scopes(iter(())) == {}


def test_normalize_scopes_single_string_is_one_scope() -> None:
    assert normalize_scopes("admin") == {"admin": True}


@pytest.mark.parametrize(
    "bad", ["reed", "users:list", "READ", "", "targets:", ":read", "users : read"]
)
def test_normalize_scopes_unknown(bad: str) -> None:
    with pytest.raises(InvalidInput, match="unknown scope") as info:
        normalize_scopes(["read", bad])
    assert repr(bad.strip()) in info.value.message
    assert "api_keys:read" in info.value.message, "lists the valid scopes"


@given(st.lists(st.sampled_from(sorted(ALL_SCOPES))))
def test_normalize_scopes_property(scopes: list[str]) -> None:
    result = normalize_scopes(scopes)
    assert set(result) == set(scopes)
    assert list(result) == sorted(result)
    assert all(v is True for v in result.values())


@pytest.mark.parametrize(
    ("granted", "required", "expected"),
    [
        ({"admin": True}, "users:delete", True),
        ({"admin": True}, "*", True),
        ({"*": True}, "admin", True),
        ({"*": True}, "targets:write", True),
        ({"users:*": True}, "users:delete", True),
        ({"users:*": True}, "users:*", True),
        ({"users:*": True}, "targets:read", False),
        ({"users:*": True}, "read", False),
        ({"read": True}, "read", True),
        ({"read": True}, "sessions:read", True),
        ({"read": True}, "sessions:write", False),
        ({"read": True}, "sessions:*", False),
        ({"read": True}, "write", False),
        ({"users:read": True}, "users:read", True),
        ({"users:read": True}, "users:write", False),
        ({"users:read": True}, "read", False),
        ({"users:read": True, "users:write": True, "users:delete": True}, "users:*", False),
        ({"write": True}, "admin", False),
        ({}, "read", False),
        ({"admin": False}, "read", False),
        ({"admin": 1}, "read", False),  # only a real True counts
        ({"admin": "true"}, "read", False),
        ({"bogus": True}, "read", False),
    ],
)
def test_scope_grants(granted: dict[str, object], required: str, expected: bool) -> None:
    assert scope_grants(granted, required) is expected  # type: ignore[arg-type]


def test_scope_grants_rejects_unknown_required() -> None:
    with pytest.raises(InvalidInput, match="unknown scope"):
        scope_grants({"admin": True}, "users:list")


@given(st.sampled_from(sorted(ALL_SCOPES)))
def test_every_scope_grants_itself_and_admin_grants_all(scope: str) -> None:
    assert scope_grants({scope: True}, scope)
    assert scope_grants({"admin": True}, scope)
    assert scope_grants({"*": True}, scope)
    assert not scope_grants({scope: False}, scope)


# --- durations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("24h", timedelta(hours=24)),
        ("15m", timedelta(minutes=15)),
        ("30s", timedelta(seconds=30)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        (" 1H ", timedelta(hours=1)),
        ("36525d", MAX_DURATION),
        ("0h1m", timedelta(minutes=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "d",
        "10",
        "0d",
        "0h0m",
        "-5m",
        "1.5h",
        "30m1h",
        "1h1h",
        "1y",
        "1mo",
        "5 m",
        "36526d",
        "999999999w",
        "1" * 50 + "s",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"e\.g\. 90d, 24h") as info:
        parse_duration(text)
    assert info.value.exit_code == ExitCode.USAGE


@given(st.integers(min_value=1, max_value=36525 * 24))
def test_parse_duration_hours_property(hours: int) -> None:
    assert parse_duration(f"{hours}h") == timedelta(hours=hours)


# --- time specs ---------------------------------------------------------------------

NOW = datetime(2024, 5, 10, 15, 30, 45, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("today", datetime(2024, 5, 10, tzinfo=UTC)),
        ("yesterday", datetime(2024, 5, 9, tzinfo=UTC)),
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("1h30m", NOW - timedelta(hours=1, minutes=30)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02 03:04", datetime(2024, 1, 2, 3, 4, tzinfo=UTC)),
        ("2024-01-02T03:04:05.5+02:00", datetime(2024, 1, 2, 1, 4, 5, 500000, tzinfo=UTC)),
    ],
)
def test_parse_time_spec(text: str, expected: datetime) -> None:
    result = parse_time_spec(text, NOW)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_parse_time_spec_naive_and_offset_now() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_time_spec("now", naive) == NOW
    shifted = NOW.astimezone(timezone(timedelta(hours=-8)))  # 07:30 on 10 May locally
    # "today" is the day of local time (VUTF_TIMEZONE, else the system's zone: UTC
    # here), not the day of the zone `now` happens to be given in.
    assert parse_time_spec("today", shifted) == datetime(2024, 5, 10, tzinfo=UTC)
    assert parse_time_spec("today", shifted).tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "last week",
        "2024-13-01",
        "2024-01-02T25:00",
        "5 fortnights ago",
        "-15m",
        "\x1b[2J",
    ],
)
def test_parse_time_spec_rejects(text: str) -> None:
    # The accepted forms are in the hint (vutf_cli.domain.time_input).
    with pytest.raises(InvalidInput, match="invalid time") as info:
        parse_time_spec(text, NOW)
    assert "ISO 8601" in (info.value.hint or "")
    assert "\x1b" not in info.value.message


def test_parse_time_spec_before_year_one() -> None:
    early = datetime(1, 1, 2, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        parse_time_spec("2w", early)
    with pytest.raises(InvalidInput):
        parse_time_spec("yesterday", datetime(1, 1, 1, 5, tzinfo=UTC))
