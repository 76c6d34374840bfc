"""Issue 12, items 5, 12 and 13, through the real entry point on SQLite and PostgreSQL.

* Gates that cannot pass by accident: ``audit verify --since-seq`` beyond the end is
  exit 2 naming the last seq (not "0 entries checked, intact"); an ``--anchor`` the log
  does not reach is exit 6 (truncated), on an empty log too.
* ``audit follow`` prints the columns of ``audit list`` (the same JSON fields), shows
  the last N entries first (``-n``, default 10, ``-n 0`` none) and takes ``--since``.
* Time filters accept what people type; tables show ``VUTF_TIMEZONE`` time, machine
  output stays UTC ISO 8601.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.audit_seed import bulk_seed
from tests.cli.conftest import CliResult, RunCli
from vutf_cli.db.database import Database

BERLIN = ZoneInfo("Europe/Berlin")


def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, result.stderr
    return result


def seqs(result: CliResult) -> list[int]:
    return [row["seq"] for row in ok(result).jsonl()]


# -- item 5: gates ------------------------------------------------------------------------
def test_verify_since_seq_beyond_the_end_is_an_error(run_cli: RunCli, db: Database) -> None:
    empty = run_cli("audit", "verify", "--since-seq", "1", "-o", "json")
    assert empty.exit_code == 2
    assert empty.error()["message"] == (
        "--since-seq 1 is beyond the end of the audit log: the log is empty"
    )
    assert empty.stdout == ""
    bulk_seed(db, 5)
    beyond = run_cli("audit", "verify", "--since-seq", "6")
    assert beyond.exit_code == 2
    assert beyond.stderr.splitlines() == [
        "error: --since-seq 6 is beyond the end of the audit log (last seq 5)",
        "hint: give a seq from 1 to 5",
    ]
    assert "intact" not in beyond.stderr
    last = ok(run_cli("audit", "verify", "--since-seq", "5", "--json")).json()
    assert (last["ok"], last["checked"], last["first_seq"]) == (True, 1, 5)


def test_an_anchor_the_log_does_not_reach_fails(run_cli: RunCli, db: Database) -> None:
    ghost = "3:" + "ab" * 32
    empty = run_cli("audit", "verify", "--anchor", ghost)
    assert empty.exit_code == 6, empty.stderr
    assert "does not exist: the log was truncated" in empty.stderr
    bulk_seed(db, 2)
    short = run_cli("audit", "verify", "--anchor", ghost)
    assert short.exit_code == 6
    assert "audit chain broken at seq 3: anchor" in short.stderr


# -- item 12: follow ------------------------------------------------------------------------
def test_follow_shows_the_columns_of_list(run_cli: RunCli, db: Database) -> None:
    bulk_seed(db, 3)
    # The rows and header of the table (not a rule drawn under the header).
    listed = [
        line
        for line in ok(run_cli("audit", "list", "--reverse")).stdout.splitlines()
        if line.strip("─- ")
    ]
    followed = ok(run_cli("audit", "follow", "--timeout", "0", "--interval", "0.05"))
    header, *rows = [line for line in followed.stdout.splitlines() if line.strip("─- ")]
    assert header.split() == listed[0].split()
    assert [row.split() for row in rows] == [row.split() for row in listed[1:]]
    assert "following the audit log after seq 3; 3 shown first" in followed.stderr
    # Machine formats: the very objects `audit list` prints.
    as_list = ok(run_cli("audit", "list", "--reverse", "-o", "jsonl")).jsonl()
    as_follow = ok(run_cli("audit", "follow", "--timeout", "0", "-o", "jsonl")).jsonl()
    assert as_follow == as_list


def test_follow_shows_the_last_n_first(run_cli: RunCli, db: Database) -> None:
    bulk_seed(db, 15)
    follow = ("audit", "follow", "--timeout", "0", "--interval", "0.05", "-o", "jsonl")
    assert seqs(run_cli(*follow)) == list(range(6, 16))  # 10 by default, like tail
    assert seqs(run_cli(*follow, "-n", "3")) == [13, 14, 15]
    assert seqs(run_cli(*follow, "--lines", "20")) == list(range(1, 16))
    none = ok(run_cli(*follow, "-n", "0"))
    assert (none.stdout, "shown first" in none.stderr) == ("", False)
    # --max-events counts what is shown first, and keeps the newest of it.
    assert seqs(run_cli(*follow, "-n", "2", "--max-events", "1")) == [15]
    clamped = ok(run_cli(*follow[:-2], "-n", "3", "--max-events", "2"))
    assert "following the audit log after seq 15; 2 shown first" in clamped.stderr
    assert [line.split()[0] for line in clamped.stdout.splitlines()[2:]] == ["14", "15"]
    assert run_cli(*follow, "-n", "-1").exit_code == 2
    both = run_cli(*follow, "-n", "3", "--since-seq", "2")
    assert both.exit_code == 2
    assert "give one of them" in both.stderr


def test_follow_since_time(run_cli: RunCli, db: Database) -> None:
    now = datetime.now(UTC)
    # Rows 1..6 at now - 2h45m, -2h15m, -1h45m, -1h15m, -45m, -15m.
    bulk_seed(db, 6, start=now - timedelta(hours=3, minutes=15), step=timedelta(minutes=30))
    follow = ("audit", "follow", "--timeout", "0", "-o", "jsonl")
    assert seqs(run_cli(*follow, "--since", "1 hour ago")) == [5, 6]
    assert seqs(run_cli(*follow, "--since", "2h")) == [3, 4, 5, 6]
    assert seqs(run_cli(*follow, "--since-seq", "6")) == [6]
    assert run_cli(*follow, "--since", "2h", "--since-seq", "2").exit_code == 2
    assert run_cli(*follow, "--since", "soon").exit_code == 2


# -- item 13: time ----------------------------------------------------------------------------
def test_since_accepts_what_people_type(run_cli: RunCli, db: Database) -> None:
    now = datetime.now(UTC)
    bulk_seed(db, 6, start=now - timedelta(hours=3, minutes=15), step=timedelta(minutes=30))

    def listed(*args: str) -> list[int]:
        return sorted(row["seq"] for row in ok(run_cli("audit", "list", "--json", *args)).json())

    assert listed("--since", "1 hour ago") == [5, 6]
    assert listed("--since", "an hour ago") == [5, 6]
    assert listed("--since", "90 minutes ago") == [4, 5, 6]
    assert listed("--since", "2h ago", "--until", "30 minutes ago") == [3, 4, 5]
    assert listed("--since", "yesterday") == [1, 2, 3, 4, 5, 6]
    stats = ok(run_cli("audit", "stats", "--since", "1 hour ago", "--json")).json()
    assert stats == [{"action": "user.create", "count": 2}]
    exported = ok(run_cli("audit", "export", "--since", "1 hour ago")).stdout.splitlines()
    assert len(exported) == 2


def test_naive_times_are_local_time(run_cli: RunCli, db: Database) -> None:
    berlin_now = datetime.now(BERLIN)
    day = berlin_now.date()
    # One row at 08:59 and one at 09:01 today, Berlin time.
    at = datetime(day.year, day.month, day.day, 8, 59, tzinfo=BERLIN).astimezone(UTC)
    bulk_seed(db, 2, start=at - timedelta(minutes=2), step=timedelta(minutes=2))
    env = {"VUTF_TIMEZONE": "Europe/Berlin"}
    rows = ok(run_cli("audit", "list", "--json", "--since", "09:00", env=env)).json()
    assert [row["seq"] for row in rows] == [2]
    iso = f"{day.isoformat()} 09:00"  # no zone: Berlin's 09:00
    assert len(ok(run_cli("audit", "list", "--json", "--since", iso, env=env)).json()) == 1
    utc_iso = f"{day.isoformat()}T09:00Z"  # a zone: as given (10:00 or 11:00 in Berlin)
    assert ok(run_cli("audit", "list", "--json", "--since", utc_iso, env=env)).json() == []


def test_naive_times_without_vutf_timezone_are_utc_whatever_tz_says(
    run_cli: RunCli, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same script line selects the same rows on a laptop in New York and on a UTC runner.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        bulk_seed(db, 2, start=datetime(2024, 1, 1, 11, 0, tzinfo=UTC))  # 11:01 and 11:02 UTC
        rows = ok(run_cli("audit", "list", "--json", "--since", "2024-01-01T11:02")).json()
        assert [row["seq"] for row in rows] == [2]
        assert "2024-01-01 11:01:00Z" in ok(run_cli("audit", "list")).stdout
        local = {"VUTF_TIMEZONE": "local"}  # opting in: New York's 06:02 (-05:00)
        rows = ok(run_cli("audit", "list", "--json", "--since", "2024-01-01T06:02", env=local))
        assert [row["seq"] for row in rows.json()] == [2]
        assert "2024-01-01 06:01:00-05:00" in ok(run_cli("audit", "list", env=local)).stdout
    finally:
        monkeypatch.undo()
        time.tzset()


def test_since_in_the_future_is_a_notice_not_an_error(run_cli: RunCli, db: Database) -> None:
    bulk_seed(db, 2)
    for command in (("audit", "list"), ("audit", "export")):
        future = run_cli(*command, "--since", "2999-01-01")
        assert future.exit_code == 0, future.stderr
        assert future.stdout == ""
        notice = "--since is in the future (2999-01-01T00:00:00Z): nothing can match yet"
        assert notice in future.stderr.splitlines()
    past = ok(run_cli("audit", "list", "--since", "1999-01-01"))
    assert "future" not in past.stderr


def test_tables_show_the_chosen_zone_machine_output_stays_utc(
    run_cli: RunCli, db: Database
) -> None:
    bulk_seed(db, 1, start=datetime(2024, 1, 1, 11, 0, tzinfo=UTC))  # row 1 at 11:01 UTC
    assert "2024-01-01 11:01:00Z" in ok(run_cli("audit", "list")).stdout
    env = {"VUTF_TIMEZONE": "Europe/Berlin"}
    assert "2024-01-01 12:01:00+01:00" in ok(run_cli("audit", "list", env=env)).stdout
    shown = ok(run_cli("audit", "show", "1", env=env)).stdout
    assert "2024-01-01 12:01:00+01:00" in shown
    assert ok(run_cli("audit", "list", "--json", env=env)).json()[0]["created_at"] == (
        "2024-01-01T11:01:00.000000Z"
    )
    csv_text = ok(run_cli("audit", "list", "-o", "csv", env=env)).stdout
    assert "2024-01-01T11:01:00.000000Z" in csv_text
    follow = ok(run_cli("audit", "follow", "--timeout", "0", env=env)).stdout
    assert "2024-01-01 12:01:00+01:00" in follow


def test_bad_times_and_zones_are_exit_2_listing_the_forms(run_cli: RunCli) -> None:
    bad = run_cli("audit", "list", "--since", "last tuesday")
    assert bad.exit_code == 2
    error, hint = bad.stderr.splitlines()
    assert error == "error: --since: invalid time 'last tuesday'"
    assert hint.startswith("hint: accepted: now, today, yesterday")
    assert "'1 hour ago'" in hint
    assert "no zone means VUTF_TIMEZONE's time if set, else UTC" in hint
    zone = run_cli("audit", "list", env={"VUTF_TIMEZONE": "Mars/Olympus"})
    assert zone.exit_code == 2
    assert "VUTF_TIMEZONE: unknown time zone 'Mars/Olympus'" in zone.stderr
