"""`vutf audit` through the real root command (CliRunner), on SQLite and PostgreSQL.

Rows are seeded with multi-row INSERTs that compute the hash chain the way
the repository does (tests/audit_seed.py), so that 10,000 rows take seconds.
Tampering goes around vutf as an attacker with database access would (see
tests/integration/test_audit_repository.py): one transaction switches the
append-only triggers off, changes rows with raw SQL and restores them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select as io_select
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection

from tests.audit_seed import bulk_seed
from tests.audit_tampering import tampering
from tests.cli.conftest import RunCli
from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.repositories.audit import hash_content
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.security.audit_chain import GENESIS_HASH, compute_row_hash

AUDIT = cast(Table, AuditLog.__table__)
HEAD_LINE = re.compile(r"(\d+):([0-9a-f]{64})")
ENTRY_FIELDS = [
    "id",
    "seq",
    "created_at",
    "actor",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "status",
    "changes",
    "metadata",
    "error_message",
    "duration_ms",
    "ip_address",
    "user_agent",
    "prev_hash",
    "row_hash",
]


# -- helpers ----------------------------------------------------------------------------
def append(db: Database, *specs: dict[str, Any]) -> None:
    def work(uow: UnitOfWork) -> None:
        for spec in specs:
            uow.audit.append(**{"action": "user.create", "resource_type": "user", **spec})

    db.run(work)


def _varied(db: Database) -> None:
    alice, bob = uuid.UUID(int=1), uuid.UUID(int=2)
    append(
        db,
        {"actor": "alice", "user_id": alice, "resource_id": "u1", "changes": {"email": "a@x"}},
        {"action": "user.delete", "actor": "alice", "user_id": alice, "resource_id": "u1"},
        {
            "action": "api_key.create",
            "resource_type": "api_key",
            "actor": "bob",
            "user_id": bob,
            "resource_id": "k1",
        },
        {
            "action": "api_key.revoke",
            "resource_type": "api_key",
            "actor": "bob",
            "resource_id": "k1",
            "status": "failure",
        },
        {"action": "db.upgrade", "resource_type": "database", "actor": "root", "status": "error"},
        {"actor": "bob", "user_id": bob, "resource_id": "u2"},
    )


def _seqs(result: Any) -> list[int]:
    assert result.exit_code == 0, result.stderr
    return [entry["seq"] for entry in result.json()]


# -- list ------------------------------------------------------------------------------------
def test_list_table_shows_the_main_columns_newest_first(run_cli: RunCli, db: Database) -> None:
    _varied(db)
    result = run_cli("audit", "list")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "seq",
        "created_at",
        "actor",
        "action",
        "resource_type",
        "resource_id",
        "status",
    ]
    rows = [line.split() for line in lines[2:]]
    assert [row[0] for row in rows] == ["6", "5", "4", "3", "2", "1"]
    assert rows[1][3:5] == ["root", "db.upgrade"]
    assert "next cursor" not in result.stderr


def test_list_filters(run_cli: RunCli, db: Database) -> None:
    _varied(db)
    assert _seqs(run_cli("audit", "list", "--json", "--by-actor", "alice")) == [2, 1]
    # --actor is the global option (who is acting) wherever it stands: never a filter,
    # and refused where a script may still mean the old filter (issue 12, item 11).
    for args in (["--actor", "bob", "audit", "list"], ["audit", "list", "--actor", "bob"]):
        refused = run_cli(*args)
        assert (refused.exit_code, refused.stdout) == (2, "")
        assert "hint: filter with --by-actor bob" in refused.stderr
    assert _seqs(run_cli("audit", "list", "--json", "--action", "user.*")) == [6, 2, 1]
    assert _seqs(run_cli("audit", "list", "--json", "--action", "*.create")) == [6, 3, 1]
    assert _seqs(run_cli("audit", "list", "--json", "--action", "api_key.revoke")) == [4]
    assert _seqs(run_cli("audit", "list", "--json", "--resource-type", "api_key")) == [4, 3]
    assert _seqs(run_cli("audit", "list", "--json", "--resource-id", "u1")) == [2, 1]
    assert _seqs(
        run_cli("audit", "list", "--json", "--resource-type", "user", "--resource-id", "u2")
    ) == [6]
    assert _seqs(run_cli("audit", "list", "--json", "--status", "failure")) == [4]
    assert _seqs(run_cli("audit", "list", "--json", "--status", "error")) == [5]
    assert _seqs(run_cli("audit", "list", "--json", "--user", str(uuid.UUID(int=2)))) == [6, 3]
    assert _seqs(run_cli("audit", "list", "--json", "--reverse", "--by-actor", "bob")) == [3, 4, 6]
    by_bob = run_cli("audit", "list", "--json", "--by-actor", "bob", "--status", "failure")
    assert _seqs(by_bob) == [4]
    empty = run_cli("audit", "list", "--json", "--by-actor", "nobody")
    assert (empty.exit_code, empty.json()) == (0, [])
    assert "no audit entries found" in empty.stderr


def test_list_user_filter_by_username_and_unknown_user(run_cli: RunCli, db: Database) -> None:
    user_id = db.run(
        lambda uow: (
            uow.users.create_user(
                username="carol", email="carol@example.com", password="correct horse battery"
            ).id
        )
    )
    append(db, {"user_id": user_id}, {}, {"user_id": user_id, "action": "user.update"})
    assert _seqs(run_cli("audit", "list", "--json", "--user", "carol")) == [3, 1]
    assert _seqs(run_cli("audit", "list", "--json", "--user", "carol@example.com")) == [3, 1]
    unknown = run_cli("audit", "list", "--user", "mallory")
    assert unknown.exit_code == 3
    assert "error: user 'mallory' not found" in unknown.stderr


def test_list_relative_times(run_cli: RunCli, db: Database) -> None:
    now = datetime.now(UTC)
    ages = {1: timedelta(hours=3), 2: timedelta(hours=1), 3: timedelta(minutes=5)}
    bulk_seed(db, 3, lambda seq: {"created_at": now - ages[seq]})
    assert _seqs(run_cli("audit", "list", "--json", "--since", "2h")) == [3, 2]
    assert _seqs(run_cli("audit", "list", "--json", "--since", "15m")) == [3]
    assert _seqs(run_cli("audit", "list", "--json", "--until", "2h")) == [1]
    assert _seqs(run_cli("audit", "list", "--json", "--since", "4h", "--until", "30m")) == [2, 1]
    iso = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    assert _seqs(run_cli("audit", "list", "--json", "--since", iso)) == [3, 2]
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    expected = [seq for seq in (3, 2, 1) if now - ages[seq] >= today]
    assert _seqs(run_cli("audit", "list", "--json", "--since", "today")) == expected
    yesterday = today - timedelta(days=1)
    assert _seqs(
        run_cli("audit", "list", "--json", "--since", "yesterday", "--until", "today")
    ) == [seq for seq in (3, 2, 1) if yesterday <= now - ages[seq] < today]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "done"], "invalid status 'done'"),
        (["--since", "last week"], "--since: invalid time"),
        (["--cursor", "not-a-cursor"], "invalid cursor"),
        (["--limit", "0"], "--limit"),
        (["--action", "user.[ab]"], "invalid action filter"),
    ],
)
def test_list_rejects_bad_input(
    run_cli: RunCli, db: Database, args: list[str], message: str
) -> None:
    result = run_cli("audit", "list", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    machine = run_cli("-o", "json", "audit", "list", *args)
    assert machine.exit_code == 2
    assert machine.error()["code"] == "invalid_input"


def test_list_machine_formats_carry_every_field(run_cli: RunCli, db: Database) -> None:
    _varied(db)
    (first,) = run_cli("audit", "list", "--json", "--limit", "1", "--reverse").json()
    assert list(first) == ENTRY_FIELDS
    assert first["changes"] == {"email": "a@x"}
    assert first["metadata"]["request_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["created_at"])
    lines = run_cli("-o", "jsonl", "audit", "list").jsonl()
    assert [line["seq"] for line in lines] == [6, 5, 4, 3, 2, 1]
    table = list(csv.reader(io.StringIO(run_cli("-o", "csv", "audit", "list").stdout)))
    assert table[0] == ENTRY_FIELDS
    assert len(table) == 7


def test_cursor_pages_and_goes_to_stderr(run_cli: RunCli, db: Database) -> None:
    bulk_seed(db, 7)
    first = run_cli("audit", "list", "--json", "--limit", "3")
    assert _seqs(first) == [7, 6, 5]
    (cursor,) = re.findall(r"^next cursor: (\S+)$", first.stderr, re.MULTILINE)
    first_cursor = cursor
    second = run_cli("audit", "list", "--json", "--limit", "3", "--cursor", cursor)
    assert _seqs(second) == [4, 3, 2]
    (cursor,) = re.findall(r"^next cursor: (\S+)$", second.stderr, re.MULTILINE)
    last = run_cli("audit", "list", "--json", "--limit", "3", "--cursor", cursor)
    assert _seqs(last) == [1]
    assert "next cursor" not in last.stderr
    # --quiet hides notices, never the cursor: a script paging through needs it.
    quiet = run_cli("--quiet", "audit", "list", "--json", "--limit", "3")
    assert quiet.stderr == f"next cursor: {first_cursor}\n"
    # A cursor belongs to its direction.
    wrong = run_cli("audit", "list", "--reverse", "--limit", "3", "--cursor", cursor)
    assert wrong.exit_code == 2
    assert "newest first" in wrong.stderr


def test_paging_10000_rows_while_others_append(run_cli: RunCli, db: Database) -> None:
    original = bulk_seed(db, 10_000)
    stop = threading.Event()
    appended: list[int] = []
    errors: list[BaseException] = []

    def appender() -> None:
        try:
            while not stop.is_set():
                seq = db.run(
                    lambda uow: uow.audit.append(action="user.login", resource_type="user").seq
                )
                appended.append(seq)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=appender)
    thread.start()
    seen: list[int] = []
    pages = 0
    try:
        cursor: str | None = None
        while True:
            args = ["audit", "list", "-o", "jsonl", "--limit", "500"]
            result = run_cli(*args, *(["--cursor", cursor] if cursor else []))
            assert result.exit_code == 0, result.stderr
            seen.extend(line["seq"] for line in result.jsonl())
            pages += 1
            found = re.findall(r"^next cursor: (\S+)$", result.stderr, re.MULTILINE)
            if not found:
                break
            cursor = found[0]
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert appended, "the appender never ran"
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert seen == sorted(seen, reverse=True)
    assert [seq for seq in seen if seq <= original] == list(range(original, 0, -1))
    # New rows can only be on the first page, above every original row.
    assert all(seq in appended for seq in seen if seq > original)
    assert pages >= 20


# -- show ------------------------------------------------------------------------------------
def test_show_by_seq_and_by_id(run_cli: RunCli, db: Database) -> None:
    changes = {"email": {"old": "a@x", "new": "b@x"}, "roles": ["admin", "ops"], "n": 1.5}
    append(db, {}, {"changes": changes, "metadata": {"ticket": "OPS-7"}, "duration_ms": 12})
    by_seq = run_cli("audit", "show", "2", "--json")
    assert by_seq.exit_code == 0, by_seq.stderr
    entry = by_seq.json()
    assert list(entry) == ENTRY_FIELDS
    assert entry["changes"] == changes
    assert entry["metadata"]["ticket"] == "OPS-7"
    assert entry["metadata"]["request_id"]
    by_id = run_cli("audit", "show", entry["id"], "--json")
    assert by_id.json() == entry
    table = run_cli("audit", "show", "2")
    assert table.exit_code == 0
    assert '"roles":["admin","ops"]' in table.stdout
    assert "OPS-7" in table.stdout


def test_show_unknown_and_malformed(run_cli: RunCli, db: Database) -> None:
    append(db, {})
    missing = run_cli("audit", "show", "99")
    assert missing.exit_code == 3
    assert "audit entry '99' not found" in missing.stderr
    assert run_cli("audit", "show", str(uuid.uuid4())).exit_code == 3
    assert run_cli("audit", "show", "not-a-seq").exit_code == 2


# -- export ------------------------------------------------------------------------------------
def test_export_formats_and_filters(run_cli: RunCli, db: Database) -> None:
    _varied(db)
    jsonl = run_cli("audit", "export", "--action", "user.*")
    assert jsonl.exit_code == 0, jsonl.stderr
    assert [json.loads(line)["seq"] for line in jsonl.stdout.splitlines()] == [1, 2, 6]
    rows = list(csv.DictReader(io.StringIO(run_cli("audit", "export", "-o", "csv").stdout)))
    assert [int(row["seq"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    assert json.loads(rows[0]["changes"]) == {"email": "a@x"}
    assert rows[3]["status"] == "failure"
    header = run_cli("audit", "export", "-o", "csv", "--by-actor", "nobody")
    assert header.stdout.splitlines() == [",".join(ENTRY_FIELDS)]
    # The global -o is honoured for the export formats, and json streams an array.
    assert len(list(csv.reader(io.StringIO(run_cli("-o", "csv", "audit", "export").stdout)))) == 7
    array = run_cli("-o", "json", "audit", "export", "--status", "success")
    assert [entry["seq"] for entry in array.json()] == [1, 2, 3, 6]
    assert run_cli("-o", "json", "audit", "export", "--by-actor", "nobody").json() == []
    # -o table is not an export format: jsonl.
    assert json.loads(run_cli("-o", "table", "audit", "export").stdout.splitlines()[0])["seq"] == 1
    bad = run_cli("audit", "export", "-o", "xml")
    assert bad.exit_code == 2


def _run_with_stderr_on_a_terminal(args: list[str], env: dict[str, str], stdout: Path) -> bytes:
    """Run the installed vutf with stdout to a file and stderr on a pseudo-terminal."""
    master, slave = os.openpty()
    with stdout.open("w") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=slave, stdin=subprocess.DEVNULL, env=env
        )
    os.close(slave)
    written = b""
    try:
        while True:
            ready, _, _ = io_select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(master)
    assert process.wait(timeout=60) == 0, written[-2000:]
    return written


def test_export_progress_bar_only_on_a_terminal(
    run_cli: RunCli, db: Database, database_url: str, tmp_path: Path
) -> None:
    total = bulk_seed(db, 20_000)
    vutf = Path(sys.executable).with_name("vutf")
    env = {**os.environ, "VUTF_DATABASE_URL": database_url}
    data = tmp_path / "audit.jsonl"
    stderr = _run_with_stderr_on_a_terminal([str(vutf), "audit", "export"], env, data)
    assert b"exporting audit log" in stderr
    assert b"100%" in stderr
    assert stderr.rstrip().endswith(f"exported {total} audit entries".encode())
    lines = data.read_text().splitlines()  # the data is not drawn into the bar's console
    assert len(lines) == total
    assert json.loads(lines[-1])["seq"] == total
    assert "\x1b" not in data.read_text()
    piped = run_cli("audit", "export", "--action", "user.create", "--since", "2024-01-01")
    assert piped.stderr == f"exported {total} audit entries\n"  # no bar without a terminal


def test_export_to_a_private_file(run_cli: RunCli, db: Database, tmp_path: Path) -> None:
    _varied(db)
    target = tmp_path / "audit.jsonl"
    result = run_cli("audit", "export", "--output-file", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"exported 6 audit entries to {target}" in result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == run_cli("audit", "export").stdout

    again = run_cli("audit", "export", "--output-file", str(target), "-o", "csv")
    assert again.exit_code == 4
    assert "already exists" in again.stderr
    assert target.read_text().startswith("{")  # untouched

    target.chmod(0o644)
    forced = run_cli("audit", "export", "--output-file", str(target), "-o", "csv", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert target.read_text().splitlines()[0] == ",".join(ENTRY_FIELDS)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    nowhere = run_cli("audit", "export", "--output-file", str(tmp_path / "missing" / "a.jsonl"))
    assert nowhere.exit_code == 2


# -- verify and head ---------------------------------------------------------------------------
def test_head_and_clean_verify(run_cli: RunCli, db: Database) -> None:
    empty_head = run_cli("audit", "head")
    assert (empty_head.exit_code, empty_head.stdout) == (0, f"0:{GENESIS_HASH}\n")
    empty = run_cli("audit", "verify", "--json")
    assert empty.exit_code == 0
    assert (empty.json()["checked"], empty.json()["head"]) == (0, f"0:{GENESIS_HASH}")

    bulk_seed(db, 12)
    head = run_cli("audit", "head")
    match = HEAD_LINE.fullmatch(head.stdout.strip())
    assert match is not None
    assert match.group(1) == "12"
    assert run_cli("audit", "head", "--json").json() == {"seq": 12, "row_hash": match.group(2)}

    result = run_cli("audit", "verify")
    assert result.exit_code == 0, result.stderr
    assert re.search(r"^checked\s+12$", result.stdout, re.MULTILINE)
    assert re.search(rf"^head\s+{head.stdout.strip()}$", result.stdout, re.MULTILINE)
    assert "audit chain intact: 12 entries checked" in result.stderr
    report = run_cli("audit", "verify", "--json", "--since-seq", "5").json()
    assert report == {
        "ok": True,
        "checked": 8,
        "first_seq": 5,
        "last_seq": 12,
        "head": head.stdout.strip(),
        "bad_seq": None,
        "problem": None,
        "detail": None,
    }
    anchored = run_cli("audit", "verify", "--anchor", head.stdout.strip())
    assert anchored.exit_code == 0, anchored.stderr
    bad_anchor = run_cli("audit", "verify", "--anchor", "12:xyz")
    assert bad_anchor.exit_code == 2
    assert "invalid anchor" in bad_anchor.stderr


def _tamper_edit(conn: Connection) -> None:
    conn.execute(update(AUDIT).where(AUDIT.c.seq == 5).values(actor="mallory"))


def _tamper_delete(conn: Connection) -> None:
    conn.execute(delete(AUDIT).where(AUDIT.c.seq == 5))


def _tamper_swap(conn: Connection) -> None:
    conn.execute(update(AUDIT).where(AUDIT.c.seq == 5).values(seq=1000))
    conn.execute(update(AUDIT).where(AUDIT.c.seq == 6).values(seq=5))
    conn.execute(update(AUDIT).where(AUDIT.c.seq == 1000).values(seq=6))


def _tamper_forge(conn: Connection) -> None:
    """A row with a self-consistent hash that links to row 4, replacing row 5's link."""
    template = dict(conn.execute(select(AUDIT).where(AUDIT.c.seq == 10)).one()._mapping)
    prev = conn.execute(select(AUDIT.c.row_hash).where(AUDIT.c.seq == 9)).scalar_one()
    values = {**template, "id": uuid.uuid4(), "seq": 11, "prev_hash": prev, "actor": "mallory"}
    values["row_hash"] = compute_row_hash(prev, hash_content(values))
    conn.execute(insert(AUDIT).values(**values))


@pytest.mark.parametrize(
    ("tamper", "kind", "bad_seq"),
    [
        (_tamper_edit, "edited", 5),
        (_tamper_delete, "missing", 5),
        (_tamper_swap, "reordered", 5),
        (_tamper_forge, "inserted", 11),
    ],
)
def test_verify_pinpoints_tampering(
    run_cli: RunCli,
    db: Database,
    tamper: Callable[[Connection], None],
    kind: str,
    bad_seq: int,
) -> None:
    bulk_seed(db, 10)
    with tampering(db) as conn:
        tamper(conn)
    result = run_cli("audit", "verify")
    assert result.exit_code == 6
    assert f"error: audit chain broken at seq {bad_seq}: {kind} (" in result.stderr
    assert re.search(rf"^problem\s+{kind}$", result.stdout, re.MULTILINE)
    machine = run_cli("audit", "verify", "--json")
    assert machine.exit_code == 6
    assert (machine.json()["ok"], machine.json()["bad_seq"]) == (False, bad_seq)
    assert machine.error()["code"] == "integrity_failure"


def test_truncation_is_caught_by_an_anchor_from_head(run_cli: RunCli, db: Database) -> None:
    bulk_seed(db, 10)
    recorded = run_cli("audit", "head").stdout.strip()
    with tampering(db) as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq > 7))
    plain = run_cli("audit", "verify")
    assert plain.exit_code == 0  # without an anchor, a cut tail looks like a shorter log
    result = run_cli("audit", "verify", "--anchor", recorded)
    assert result.exit_code == 6
    assert "audit chain broken at seq 10: anchor (" in result.stderr
    assert "truncated" in result.stderr


# -- stats ---------------------------------------------------------------------------------------
def test_stats_by_each_dimension(run_cli: RunCli, db: Database) -> None:
    _varied(db)
    day = datetime.now(UTC).date().isoformat()
    expected = {
        "action": [
            {"action": "user.create", "count": 2},
            {"action": "api_key.create", "count": 1},
            {"action": "api_key.revoke", "count": 1},
            {"action": "db.upgrade", "count": 1},
            {"action": "user.delete", "count": 1},
        ],
        "actor": [
            {"actor": "bob", "count": 3},
            {"actor": "alice", "count": 2},
            {"actor": "root", "count": 1},
        ],
        "resource-type": [
            {"resource_type": "user", "count": 3},
            {"resource_type": "api_key", "count": 2},
            {"resource_type": "database", "count": 1},
        ],
        "status": [
            {"status": "success", "count": 4},
            {"status": "error", "count": 1},
            {"status": "failure", "count": 1},
        ],
        "day": [{"day": day, "count": 6}],
    }
    for by, rows in expected.items():
        result = run_cli("audit", "stats", "--by", by, "--json")
        assert result.exit_code == 0, result.stderr
        assert result.json() == rows, by
    table = run_cli("audit", "stats")
    assert table.stdout.splitlines()[0].split() == ["action", "count"]
    assert run_cli("audit", "stats", "--since", "1h", "--json").json() == expected["action"]
    assert run_cli("audit", "stats", "--until", "1h", "--json").json() == []
    assert run_cli("audit", "stats", "--by", "weekday").exit_code == 2


# -- follow ----------------------------------------------------------------------------------------
def test_follow_replays_and_stops(run_cli: RunCli, db: Database) -> None:
    _varied(db)
    result = run_cli(
        "-o", "jsonl", "audit", "follow", "--since-seq", "2", "--max-events", "3",
        "--by-actor", "bob",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [line["seq"] for line in result.jsonl()] == [3, 4, 6]
    assert "following the audit log after seq 1" in result.stderr
    table = run_cli("audit", "follow", "--since-seq", "5", "--timeout", "0.3", "--interval", "0.1")
    assert table.exit_code == 0, table.stderr
    header, rule, *lines = table.stdout.splitlines()
    assert set(rule) == {"─"}  # drawn by the renderer `audit list` uses
    # The columns of `audit list` (test_follow_shows_the_columns_of_list compares them).
    assert header.split()[:4] == ["seq", "created_at", "actor", "action"]
    assert [line.split()[0] for line in lines] == ["5", "6"]
    assert lines[0].split()[3:5] == ["root", "db.upgrade"]
    idle = run_cli(
        "-o", "jsonl", "audit", "follow", "-n", "0", "--timeout", "0.2", "--interval", "0.05"
    )
    assert (idle.exit_code, idle.stdout) == (0, "")
    assert run_cli("audit", "follow", "--interval", "0").exit_code == 2
