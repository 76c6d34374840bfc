"""`users export` → `users import` gives back exactly the values it was given (issue 11, item 6).

CSV cells are escaped against formula injection (a leading ``'``), so the
import must undo exactly the escapes and nothing else: a value that really
begins with ``'`` comes back with it, a formula-looking value without one.
Each round trip goes from one database into a second, fresh one of the same
backend (SQLite and PostgreSQL) through the real entry point, and compares
the values stored there with those first written.
"""

from __future__ import annotations

import csv
import io
import json
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.cli.conftest import CliResult, RunCli
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.output.sanitize import csv_safe
from vutf_cli.security.passwords import Passwords
from vutf_cli.services.user_import.formats import csv_value

PASSWORD = "correct horse battery staple"
# What the import reads back; the other columns are assigned by the database.
CARRIED = ("username", "email", "full_name", "is_superuser", "is_active", "is_verified")
# Everything a CSV cell may start with that the escape cares about.
PREFIXES = ("'", "''", "'''", "=", "+", "-", "@", "\t", "\r", "'=", "'+", "'-", "'@", "'\t", "=+")
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def carried(users: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(user[key] for key in CARRIED) for user in users)


def csv_cells(text: str) -> list[tuple[str, ...]]:
    """The carried columns of a CSV export, as the exact cell texts."""
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return sorted(tuple(row[key] for key in CARRIED) for row in rows)


# -- the escape and its inverse --------------------------------------------------------------
@given(st.one_of(st.text(), st.tuples(st.sampled_from(PREFIXES), st.text()).map("".join)))
@example("'")
@example("''=x")
@example("'abc")
@example("\r\n")
def test_the_import_undoes_exactly_the_escape(cell: str) -> None:
    escaped = csv_safe(cell)
    assert csv_value(escaped) == cell
    # Still spreadsheet-safe: an escaped cell never starts with a formula character.
    assert not escaped.startswith(("=", "+", "-", "@", "\t", "\r"))


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [("'abc", "''abc"), ("'", "''"), ("'=x", "''=x"), ("=x", "'=x"), ("a'b", "a'b"), ("", "")],
)
def test_a_real_leading_apostrophe_is_doubled(cell: str, escaped: str) -> None:
    assert csv_safe(cell) == escaped


@pytest.mark.parametrize(
    ("cell", "value"),
    # Hand-written files: an apostrophe before anything else is data.
    [("'abc", "'abc"), ("'", "'"), ("'=x", "=x"), ("''", "'"), ("'''", "''"), (" '=x", " '=x")],
)
def test_the_import_strips_one_apostrophe_only_before_an_escaped_character(
    cell: str, value: str
) -> None:
    assert csv_value(cell) == value


# -- through the command line, database to database --------------------------------------------
_NAME_CHARS = st.characters(
    blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=_BIDI
)
# Full names with every escape-relevant start (tab and CR are refused by the
# name rules, so the property test above covers them), commas, quotes and
# spaces at either end.
FULL_NAMES = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from([p for p in PREFIXES if "\t" not in p and "\r" not in p] + ["", " "]),
        st.text(_NAME_CHARS, max_size=20),
        st.sampled_from(["", " ", ",", '"', "'", "  "]),
    ).map(lambda parts: "".join(parts) or None),
)
# Local parts an email address may have that a spreadsheet or the escape cares about.
EMAIL_LOCALS = st.sampled_from(["a", "'a", "''a", "'=a", "=a", "+a", "-a", "a'", 'a"b', "a,b"])


@pytest.fixture
def password_hash() -> str:
    return Passwords("test").hash(PASSWORD)


def test_csv_export_imports_back_exactly(
    run_cli: RunCli, db: Database, other_database_url: str, tmp_path: Path, password_hash: str
) -> None:
    other = {"VUTF_DATABASE_URL": other_database_url}
    numbers = count()
    # Every user written so far: the first database holds them, and so must,
    # after each round trip, the second.
    expected: list[dict[str, Any]] = []

    # About 50 values in all: each example is a batch, and each batch costs
    # four runs of the command line.
    @settings(max_examples=12, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.tuples(FULL_NAMES, EMAIL_LOCALS), min_size=1, max_size=7))
    @example([("'abc", "'a"), ("'=x", "'=a"), ("=x", "=a"), ("''", "''a"), ("'", "-a")])
    def round_trip(people: list[tuple[str | None, str]]) -> None:
        batch = []
        for full_name, local in people:
            n = next(numbers)
            batch.append(
                {
                    "username": f"user{n:04d}",
                    "email": f"{local}{n}@example.org",
                    "full_name": full_name,
                    "is_superuser": n % 2 == 0,
                    "is_active": n % 3 != 0,
                    "is_verified": n % 5 == 0,
                }
            )

        def seed(uow: UnitOfWork) -> None:
            for user in batch:
                uow.users.create_user(**user, password_hash=password_hash)

        db.run(seed)
        expected.extend(batch)

        first = ok(run_cli("users", "export", "--include-hashes", "-o", "csv")).stdout
        dump = tmp_path / "users.csv"
        dump.write_text(first, encoding="utf-8", newline="")
        ok(run_cli("users", "import", str(dump), "--skip-existing", env=other))

        # The values stored in the second database are those first written...
        stored = ok(run_cli("users", "export", "-o", "jsonl", env=other)).jsonl()
        assert carried(stored) == carried(expected)
        # ...so exporting them again gives the same cells, byte for byte.
        second = ok(run_cli("users", "export", "--include-hashes", "-o", "csv", env=other))
        assert csv_cells(second.stdout) == csv_cells(first)

    round_trip()


TRICKY = [
    ("'apostrophe", "'a@example.org"),
    ("=1+1", "=b@example.org"),
    ("'=not a formula", "'=c@example.org"),
    (" spaces at both ends ", "d@example.org"),
    ('Ünïcødé, "quoted", 名前 😀', 'e,"f@example.org'),
    ("\ufeffbom inside", "g@example.org"),
    (None, "h@example.org"),
]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_every_format_imports_back_exactly(
    run_cli: RunCli, other_database_url: str, tmp_path: Path, password_hash: str, fmt: str
) -> None:
    rows = [
        {
            "username": f"tricky{n}",
            "email": email,
            "full_name": name,
            "password_hash": password_hash,
        }
        for n, (name, email) in enumerate(TRICKY)
    ]
    source = tmp_path / "source.json"
    source.write_text(json.dumps(rows), encoding="utf-8")
    ok(run_cli("users", "import", str(source)))

    exported = ok(run_cli("users", "export", "--include-hashes", "-o", fmt)).stdout
    dump = tmp_path / f"users.{fmt}"
    dump.write_text(exported, encoding="utf-8", newline="")
    other = {"VUTF_DATABASE_URL": other_database_url}
    ok(run_cli("users", "import", str(dump), env=other))

    before = ok(run_cli("users", "export", "-o", "jsonl")).jsonl()
    after = ok(run_cli("users", "export", "-o", "jsonl", env=other)).jsonl()
    assert carried(after) == carried(before)
    assert {user["username"]: user["full_name"] for user in after} == {
        f"tricky{n}": name for n, (name, _) in enumerate(TRICKY)
    }


def test_jsonl_lines_end_only_at_newlines(run_cli: RunCli, tmp_path: Path) -> None:
    # JSON allows U+2028 and U+2029 raw inside a string (and a password may
    # hold them); str.splitlines would cut the record there.
    password = "correct horse\u2028battery\u2029staple"
    source = tmp_path / "users.jsonl"
    source.write_text(
        json.dumps(
            {"username": "sep", "email": "sep@example.org", "password": password},
            ensure_ascii=False,
        )
        + "\r\n",
        encoding="utf-8",
    )
    ok(run_cli("users", "import", str(source)))
    check = run_cli("users", "check-password", "sep", "--password-stdin", input=password)
    assert check.exit_code == 0, check.stderr
