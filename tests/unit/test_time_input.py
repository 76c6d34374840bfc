"""The one parser of TIME (vutf_cli/domain/time_input.py) and how tables show times."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vutf_cli.domain import time_input
from vutf_cli.domain.time_input import SystemZone, parse_time, parse_zone, table_time, use_zone
from vutf_cli.errors import InvalidInput

BERLIN = ZoneInfo("Europe/Berlin")
# 10:30 in Berlin (summer time, +02:00) on 10 May 2024.
NOW = datetime(2024, 5, 10, 8, 30, 45, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_zone_chosen() -> Iterator[None]:
    use_zone(None)
    yield
    use_zone(None)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("2h", NOW - timedelta(hours=2)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("2h ago", NOW - timedelta(hours=2)),
        ("1 hour ago", NOW - timedelta(hours=1)),
        ("an hour ago", NOW - timedelta(hours=1)),
        ("90 minutes ago", NOW - timedelta(minutes=90)),
        ("3 days ago", NOW - timedelta(days=3)),
        ("2 weeks ago", NOW - timedelta(weeks=2)),
        ("1 hour 30 minutes ago", NOW - timedelta(minutes=90)),
        ("  1   HOUR  ago ", NOW - timedelta(hours=1)),
        ("today", berlin(2024, 5, 10)),
        ("yesterday", berlin(2024, 5, 9)),
        ("tomorrow", berlin(2024, 5, 11)),
        ("09:00", berlin(2024, 5, 10, 9, 0)),
        ("9:05:30", berlin(2024, 5, 10, 9, 5, 30)),
        ("yesterday 17:30", berlin(2024, 5, 9, 17, 30)),
        ("2024-01-02", berlin(2024, 1, 2)),  # winter: +01:00
        ("2024-01-02T03:04", berlin(2024, 1, 2, 3, 4)),
        ("2024-01-02 03:04:05", berlin(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02t03:04:05z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05+05:00", datetime(2024, 1, 1, 22, 4, 5, tzinfo=UTC)),
    ],
)
def test_forms_people_type(text: str, expected: datetime) -> None:
    found = parse_time(text, NOW, zone=BERLIN)
    assert found == expected
    assert found.tzinfo is UTC


def test_the_commands_zone_is_the_default() -> None:
    use_zone(BERLIN)
    assert parse_time("09:00", NOW) == berlin(2024, 5, 10, 9, 0)
    use_zone(UTC)
    assert parse_time("09:00", NOW) == datetime(2024, 5, 10, 9, 0, tzinfo=UTC)


def test_local_day_not_utc_day() -> None:
    # 23:30 UTC on 9 May is 01:30 on 10 May in Berlin: "today" is Berlin's 10 May.
    late = datetime(2024, 5, 9, 23, 30, tzinfo=UTC)
    assert parse_time("today", late, zone=BERLIN) == berlin(2024, 5, 10)


@pytest.mark.parametrize(
    "text",
    ["", "banana", "last week", "2024-13-01", "25:00", "5 fortnights ago", "0m", "-2h", "\x1b[2J"],
)
def test_refusals_list_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_time(text, NOW, zone=BERLIN)
    assert info.value.message.startswith("invalid time ")
    assert "\x1b" not in info.value.message
    hint = info.value.hint or ""
    for form in ("1 hour ago", "09:00", "yesterday", "ISO 8601", "VUTF_TIMEZONE", "else UTC"):
        assert form in hint


def test_zone_names() -> None:
    assert parse_zone("Europe/Berlin") == BERLIN
    assert parse_zone("utc") is UTC
    assert parse_zone("local") is time_input.SYSTEM_ZONE
    for bad in ("Mars/Base", "", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(InvalidInput, match="unknown time zone"):
            parse_zone(bad)


def test_tables_show_utc_unless_a_zone_is_chosen() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    assert table_time(moment) == "2024-01-02 03:04:05Z"
    assert table_time(moment.replace(tzinfo=None)) == "2024-01-02 03:04:05Z"  # naive is UTC
    use_zone(BERLIN)
    assert table_time(moment) == "2024-01-02 04:04:05+01:00"
    assert table_time(datetime(2024, 7, 1, tzinfo=UTC)) == "2024-07-01 02:00:00+02:00"
    use_zone(ZoneInfo("Asia/Kolkata"))
    assert table_time(moment) == "2024-01-02 08:34:05+05:30"
    assert time_input.chosen_zone() == ZoneInfo("Asia/Kolkata")


@pytest.fixture
def system_in_berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's zone (TZ) is Europe/Berlin, with its rules, for one test."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("system_in_berlin")
def test_local_uses_the_offset_at_each_instant_not_todays() -> None:
    # In December (+01:00) a July wall time must still be read and shown at +02:00.
    december = datetime(2026, 12, 7, 14, tzinfo=UTC)
    use_zone(parse_zone("local"))
    assert parse_time("2026-07-01T12:00", december) == datetime(2026, 7, 1, 10, tzinfo=UTC)
    assert parse_time("2026-01-01T12:00", december) == datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert table_time(datetime(2026, 7, 1, 10, 0)) == "2026-07-01 12:00:00+02:00"
    assert table_time(datetime(2026, 12, 1, 10, 0)) == "2026-12-01 11:00:00+01:00"
    # The autumn overlap, on both sides of it.
    assert table_time(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == "2026-10-25 02:30:00+02:00"
    assert table_time(datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) == "2026-10-25 02:30:00+01:00"


@pytest.mark.parametrize("zone", [BERLIN, time_input.SYSTEM_ZONE])
@pytest.mark.usefixtures("system_in_berlin")
def test_daylight_saving_gap_is_refused_and_overlap_is_the_first(
    zone: ZoneInfo | SystemZone,
) -> None:
    with pytest.raises(InvalidInput, match=r"does not exist in .*daylight saving gap"):
        parse_time("2026-03-29T02:30", NOW, zone=zone)
    # 02:30 on 25 Oct 2026 happens twice in Berlin: the first one, at +02:00.
    assert parse_time("2026-10-25 02:30", NOW, zone=zone) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


@pytest.mark.usefixtures("system_in_berlin")
def test_no_zone_chosen_means_utc_not_the_systems_zone() -> None:
    # Scripts are deterministic: TZ=Europe/Berlin does not move zone-less input.
    assert parse_time("2024-01-02T03:04", NOW) == datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
    assert parse_time("2024-01-02", NOW) == datetime(2024, 1, 2, tzinfo=UTC)
    late = datetime(2024, 5, 9, 23, 30, tzinfo=UTC)  # 10 May already in Berlin
    assert parse_time("today", late) == datetime(2024, 5, 9, tzinfo=UTC)
    assert parse_time("09:00", NOW) == datetime(2024, 5, 10, 9, tzinfo=UTC)
    assert table_time(NOW) == "2024-05-10 08:30:45Z"
