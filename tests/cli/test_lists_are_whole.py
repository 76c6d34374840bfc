"""Every list gives all its rows, or says where the rest is (issue 12, item 2).

`users list`, `keys list` and `audit list` share one contract, on both
backends: without ``--limit`` the machine formats (json, jsonl, csv) carry
every matching row; ``--limit N`` gives N rows and ``next cursor: C`` on
stderr (also with ``--quiet``); a table shows one page and, when more rows
follow, says so on stderr with ``--all`` and ``--cursor C``; ``--all`` shows
every row in a table too.  Each group holds 105 rows here, more than a page.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from tests.cli.conftest import CliResult, RunCli, invoke
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.security.passwords import Passwords

ROWS = 105
PAGE = 100  # the default page of a table
MAX = 100_000  # the largest --limit
FORMATS = ("json", "jsonl", "csv")
# group -> (the field that names a row, the token each row shows in a table)
GROUPS = {"users": "username", "keys": "name", "audit": "resource_id"}
_TOKEN = {"users": "lw", "keys": "lk", "audit": "la"}
_CURSOR = re.compile(r"^next cursor: (\S+)$", re.MULTILINE)


def seed(db: Database, group: str) -> None:
    """105 rows of ``group``: users lw000.., keys lk000.. (of one user), audit rows la000.."""
    password_hash = Passwords("test").hash("correct horse battery staple")

    def work(uow: UnitOfWork) -> None:
        if group == "audit":
            uow.audit.append_many(
                [
                    {"action": "user.update", "resource_type": "user", "resource_id": f"la{i:03d}"}
                    for i in range(ROWS)
                ]
            )
            return
        users = [
            uow.users.create_user(
                username=f"lw{i:03d}", email=f"lw{i:03d}@example.org", password_hash=password_hash
            )
            for i in range(ROWS if group == "users" else 1)
        ]
        if group == "keys":
            for i in range(ROWS):
                uow.keys.create_key(user=users[0], name=f"lk{i:03d}", permissions={"read": True})

    db.run(work)


def _names(group: str, result: CliResult, output: str) -> list[str]:
    assert result.exit_code == 0, result.stderr
    field = GROUPS[group]
    if output == "json":
        rows: list[dict[str, Any]] = result.json()
    elif output == "jsonl":
        rows = result.jsonl()
    else:
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
    return [str(row[field]) for row in rows]


def _table_names(group: str, result: CliResult) -> set[str]:
    assert result.exit_code == 0, result.stderr
    return set(re.findall(rf"\b{_TOKEN[group]}\d{{3}}\b", result.stdout))


def _every(group: str) -> set[str]:
    return {f"{_TOKEN[group]}{i:03d}" for i in range(ROWS)}


def _cursor(result: CliResult) -> str | None:
    found = _CURSOR.findall(result.stderr)
    assert len(found) <= 1, result.stderr
    return found[0] if found else None


@pytest.mark.parametrize("group", GROUPS)
def test_machine_formats_carry_every_row_without_limit(
    run_cli: RunCli, db: Database, group: str
) -> None:
    seed(db, group)
    for output in FORMATS:
        result = run_cli(group, "list", "-o", output)
        names = _names(group, result, output)
        assert len(names) == ROWS, (output, len(names))
        assert set(names) == _every(group)
        assert _cursor(result) is None
    # --all means the same for a machine format.
    assert set(_names(group, run_cli(group, "list", "--all", "--json"), "json")) == _every(group)


@pytest.mark.parametrize("group", GROUPS)
def test_limit_gives_a_page_and_a_cursor_even_with_quiet(
    run_cli: RunCli, db: Database, group: str
) -> None:
    seed(db, group)
    pages: list[list[str]] = []
    cursors: list[str | None] = [None]
    for expected in (50, 50, 5):
        args = [group, "list", "--quiet", "-o", "jsonl", "--limit", "50"]
        result = run_cli(*args, *(["--cursor", cursors[-1]] if cursors[-1] else []))
        pages.append(_names(group, result, "jsonl"))
        assert len(pages[-1]) == expected
        cursor = _cursor(result)
        # --quiet hides notices, never the cursor (and nothing else is said).
        assert result.stderr == ("" if cursor is None else f"next cursor: {cursor}\n")
        assert (cursor is None) == (expected == 5)
        assert cursor is None or cursor not in result.stdout
        cursors.append(cursor)
    seen = [name for page in pages for name in page]
    assert len(seen) == len(set(seen)) == ROWS

    # A cursor without --limit: a machine format carries the rest, whole.
    after_first = cursors[1]
    assert after_first is not None
    rest = _names(group, run_cli(group, "list", "--json", "--cursor", after_first), "json")
    assert len(rest) == ROWS - 50
    assert set(rest) | set(pages[0]) == _every(group)


@pytest.mark.parametrize("group", GROUPS)
def test_a_table_shows_a_page_and_says_how_to_get_the_rest(
    run_cli: RunCli, db: Database, group: str
) -> None:
    seed(db, group)
    result = run_cli(group, "list", env={"COLUMNS": "400"})
    assert len(_table_names(group, result)) == PAGE
    cursor = _cursor(result)
    assert cursor is not None
    notice = " ".join(result.stderr.split())
    assert "--all" in notice
    assert f"--cursor {cursor}" in notice

    # --quiet drops the notice, never the cursor.
    quiet = run_cli("--quiet", group, "list", "--limit", "3", env={"COLUMNS": "400"})
    assert len(_table_names(group, quiet)) == 3
    assert re.fullmatch(r"next cursor: \S+\n", quiet.stderr), quiet.stderr

    every = run_cli(group, "list", "--all", env={"COLUMNS": "400"})
    assert _table_names(group, every) == _every(group)
    assert every.stderr == ""


def _limit_help(group: str) -> str:
    result = invoke([group, "list", "--help"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    found = re.search(r"--limit N (.*?) --", text)
    assert found is not None, text
    return found.group(1)


def test_limit_has_one_default_and_one_maximum_stated_in_every_help() -> None:
    helps = {group: _limit_help(group) for group in GROUPS}
    assert len(set(helps.values())) == 1, helps
    (text,) = set(helps.values())
    assert f"1-{MAX}" in text
    assert str(PAGE) in text
    for group in GROUPS:
        all_help = " ".join(invoke([group, "list", "--help"]).stdout.split())
        assert re.search(r"--all Every ", all_help), all_help


@pytest.mark.parametrize("group", GROUPS)
def test_limit_out_of_range_or_beside_all_is_refused(run_cli: RunCli, group: str) -> None:
    for args in (["--limit", "0"], ["--limit", str(MAX + 1)], ["--all", "--limit", "5"]):
        result = run_cli(group, "list", "--json", *args)
        assert (result.exit_code, result.stdout) == (2, ""), (args, result.stderr)
        assert result.error()["code"] == "invalid_input"
