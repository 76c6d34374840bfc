"""No value given on the command line is ever stored in an audit row's metadata.

The audit log is append-only: a secret that reaches it can never be removed.
So the metadata records the command path and the NAMES of the options given
(docs/architecture.md §3.2), never the command line.  Proven from outside,
on SQLite and PostgreSQL, through the real entry point with ``sys.argv``
set to what the console script would see:

* every sentinel typed on the command line (an email, an actor, a full name
  holding a database URL with a password, a key name, a file path) is found
  in a dump of ``audit_log`` only where it is the audited data itself
  (``changes``, the ``actor`` column), never in ``metadata``;
* a database URL carrying a password in any of the forms libpq accepts
  (``user:pass@``, ``?password=``, unencoded ``#``, ``/`` and ``?`` or ``@``
  in the password) either is refused, or cannot connect, or writes rows in
  which the password appears nowhere;
* :class:`~vutf_cli.domain.invocation.Invocation` refuses anything that is
  not a command path or an option name, so a value cannot be passed off as
  one.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import CliResult, RunCli, run_cli  # noqa: F401  (the fixture)
from tests.roles_support import grant_role_at
from tests.security import PASSWORD, dump_database, is_sqlite, sqlite_file
from vutf_cli.domain.invocation import Invocation
from vutf_cli.services.audit_trail import process_metadata

SECRET = "Db-Pa55-Sentinel"
METADATA_KEYS = {"host", "os_user", "vutf_version", "command", "options", "request_id"}
# The password forms of the issue; {user} and {rest} are filled per backend.
URL_FORMS = {
    "userinfo": "postgresql://{user}:SECRET@{rest}",
    "query parameter": "postgresql://{user}@{rest}?password=SECRET",
    "unencoded #": "postgresql://{user}:SE#CRET@{rest}",
    "unencoded / and ?": "postgresql://{user}:SE/CR?ET@{rest}",
    "unencoded @": "postgresql://{user}:SE@CRET@{rest}",
}


@pytest.fixture
def vutf(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> RunCli:  # noqa: F811
    """``run_cli`` with ``sys.argv`` as the console script would have it."""

    def run(*args: str, **kwargs: Any) -> CliResult:
        monkeypatch.setattr("sys.argv", ["/usr/local/bin/vutf", *args])
        return run_cli(*args, **kwargs)

    return run


def _stored_audit_log(url: str) -> list[dict[str, str | None]]:
    """Each row's actor and its changes and metadata as the database holds their text."""
    query = "SELECT seq, actor, changes{cast}, metadata{cast} FROM audit_log ORDER BY seq"
    if is_sqlite(url):
        conn = sqlite3.connect(sqlite_file(url))
        try:
            rows = conn.execute(query.format(cast="")).fetchall()
        finally:
            conn.close()
    else:
        import psycopg2

        with psycopg2.connect(url) as pg, pg.cursor() as cur:
            cur.execute(query.format(cast="::text"))
            rows = cur.fetchall()
        pg.close()
    names = ("seq", "actor", "changes", "metadata")
    return [dict(zip(names, row, strict=True)) for row in rows]


def _where(sentinel: str, rows: list[dict[str, Any]]) -> set[str]:
    """The columns of ``rows`` (actor, changes, metadata) whose stored text holds ``sentinel``."""
    return {
        name
        for row in rows
        for name in ("actor", "changes", "metadata")
        if sentinel in str(row[name])
    }


# -- sentinels typed on the command line ---------------------------------------------------
def test_values_on_the_command_line_are_stored_only_as_audited_data(
    vutf: RunCli, database_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    email = f"sentinel-{tag}@example.com"
    actor = f"actor-sentinel-{tag}"
    full_name = f"postgresql://u:{SECRET}{tag}@host/db"
    key_name = f"keyname-{tag}"
    secret_dir = tmp_path / f"path-sentinel-{tag}"
    secret_dir.mkdir()
    key_file = secret_dir / "k.key"

    created = vutf(
        "--actor", actor, "users", "create", "sentu", "--email", email,
        "--full-name", full_name, "--password-stdin", input=PASSWORD,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    refused = vutf("--actor", actor, "users", "create", "other", "--email", email,
                   "--password-stdin", input=PASSWORD)  # fmt: skip
    assert refused.exit_code == 4, refused.stderr  # a failure row is written all the same
    grant_role_at(database_url, "sentu")  # a key never carries more than its owner holds
    keyed = vutf("keys", "create", "--user", email, "--name", key_name,
                 "--secret-file", str(key_file))  # fmt: skip
    assert keyed.exit_code == 0, keyed.stderr

    rows = _stored_audit_log(database_url)
    assert len(rows) == 3, rows
    assert _where(email, rows) == {"changes"}  # the created user's email
    assert _where(actor, rows) == {"actor"}
    assert _where(SECRET, rows) == {"changes"}  # the full name is the audited data
    assert _where(key_name, rows) == {"changes"}
    assert _where(str(secret_dir), rows) == set()
    for row in rows:
        metadata = json.loads(str(row["metadata"]))
        assert set(metadata) <= {
            "host",
            "os_user",
            "vutf_version",
            "command",
            "options",
            "request_id",
            "audit_key",  # the audit key's fingerprint (or null), never the key
        }
        # The command path and option names, nothing typed.
        assert metadata["command"] in ("users create", "keys create")
        assert all(name.startswith("-") and "=" not in name for name in metadata["options"])


def test_a_command_records_its_path_and_the_names_of_its_options(
    vutf: RunCli, database_url: str
) -> None:
    done = vutf("--actor", "someone", "users", "create", "carol", "--email", "carol@example.com",
                "--password-stdin", input=PASSWORD)  # fmt: skip
    assert done.exit_code == 0, done.stderr
    (row,) = _stored_audit_log(database_url)
    metadata = json.loads(str(row["metadata"]))
    assert metadata["command"] == "users create"
    assert sorted(metadata["options"]) == ["--actor", "--email", "--password-stdin"]


# -- database URLs with a password ------------------------------------------------------------
@pytest.fixture
def url_forms(database_url: str) -> dict[str, str]:
    """The forms, each with a password only it contains, for this backend.

    PostgreSQL: pointing at the test's database (trust authentication ignores
    the password, so every form libpq parses connects and writes).  SQLite:
    the command runs against the SQLite database's environment, while the
    URL on argv names a PostgreSQL server nobody listens at.
    """
    if is_sqlite(database_url):
        user, rest = "u", "127.0.0.1:1/db"
    else:
        from sqlalchemy.engine import make_url

        parsed = make_url(database_url)
        user = parsed.username or "postgres"
        rest = f"{parsed.host or '127.0.0.1'}:{parsed.port or 5432}/{parsed.database}"
    return {name: form.format(user=user, rest=rest) for name, form in URL_FORMS.items()}


def test_a_password_in_any_url_form_never_reaches_a_stored_row(
    vutf: RunCli, database_url: str, url_forms: dict[str, str]
) -> None:
    stored: list[str] = []
    for number, (name, url) in enumerate(url_forms.items()):
        username = f"urlform{number}"
        done = vutf(
            "--database-url", url, "users", "create", username,
            "--email", f"{username}@example.com", "--password-stdin",
            input=PASSWORD, env={"VUTF_DB_DEADLINE": "0.5"},
        )  # fmt: skip
        # Stored, refused as invalid, or unable to connect: never exit 1.
        assert done.exit_code in (0, 2, 7), (name, done.exit_code, done.stderr)
        if done.exit_code == 0:
            stored.append(name)
    rows = _stored_audit_log(database_url)
    assert len(rows) == len(stored)
    dump = dump_database(database_url)
    for part in ("SECRET", "SE#CRET", "SE/CR?ET", "SE@CRET", "CRET"):
        assert part.encode() not in dump
    if is_sqlite(database_url):
        assert stored == []  # the SQLite database was never the one written
    else:
        # The plain form at least connects (trust authentication): rows were written.
        assert "userinfo" in stored


# -- the invocation cannot carry a value ---------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        ("--database-url=postgresql://u:SECRET@h/db",),
        ("postgresql://u:SECRET@h/db",),
        ("--email", "sentinel@example.com"),
        ("SECRET",),
        ("--password SECRET",),
        ("-",),
        ("--",),
        ("--email", "--email"),
    ],
)
def test_an_invocation_refuses_anything_but_option_names(options: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="option") as caught:
        Invocation("users create", options)
    assert "SECRET" not in str(caught.value)
    assert "sentinel" not in str(caught.value)


@pytest.mark.parametrize(
    "command",
    ["users create alice@example.com", "Users create", "users  create", "", "users\tcreate",
     "users create --email", "postgresql://u:SECRET@h/db"],
)  # fmt: skip
def test_an_invocation_refuses_anything_but_a_command_path(command: str) -> None:
    with pytest.raises(ValueError, match="command path"):
        Invocation(command, ("--email",))


def test_an_invocation_describes_itself_by_path_and_names() -> None:
    invocation = Invocation("users create", ("--email", "--password-stdin", "-o"))
    assert invocation.as_metadata() == {
        "command": "users create",
        "options": ["--email", "--password-stdin", "-o"],
    }
    assert Invocation().as_metadata() == {}
    with pytest.raises(ValueError, match="without a command"):
        Invocation(None, ("--email",))
    with pytest.raises(ValueError, match="tuple"):
        Invocation("users list", ["--json"])  # type: ignore[arg-type]
    process = process_metadata(invocation)
    assert list(process) == ["host", "os_user", "vutf_version", "command", "options"]
    assert set(process_metadata()) == {"host", "os_user", "vutf_version"}
