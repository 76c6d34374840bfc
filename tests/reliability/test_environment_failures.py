"""Every environment failure has its documented exit code, never exit 1 (docs/architecture.md §4.2).

A SQLite file that is not a database, corrupt or truncated; a read-only file
or folder; a full disk; a database locked past the deadline: exit 7 with one
``error:`` line naming the file (and a ``hint:`` saying what to do).  A
database migrated by a newer vutf is exit 8 saying so, on both backends.  A
read-only copy can still be read and verified.

The tests run as root, which ignores mode bits: a read-only file or folder is
made with ``chattr +i`` (skipped where the file system refuses it), a
read-only file system and a full disk with a private mount namespace
(``unshare -m`` and a read-only bind mount or a small tmpfs; skipped where
namespaces are not allowed).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import CliResult, invoke

VUTF = Path(sys.executable).with_name("vutf")
NEWER = "9999_from_a_newer_vutf"


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _run(url: str | None, *args: str, env: dict[str, str] | None = None) -> CliResult:
    prefix = ["--database-url", url] if url is not None else []
    return invoke([*prefix, *args], env=env)


def _assert_environment_error(result: CliResult, path: Path, exit_code: int = 7) -> None:
    assert result.exit_code == exit_code, result
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: "), result.stderr
    assert str(path) in lines[0]
    assert "internal error" not in result.stderr
    assert len(lines) <= 2
    assert all(line.startswith(("error: ", "hint: ")) for line in lines)


@pytest.fixture
def migrated(sqlite_template: Path, tmp_path: Path) -> Path:
    """A migrated SQLite file with one user (so one audit row) in it."""
    path = tmp_path / "db" / "vutf.db"
    path.parent.mkdir()
    shutil.copyfile(sqlite_template, path)
    created = _run(
        _sqlite_url(path),
        "users",
        "create",
        "alice",
        "--email",
        "a@example.com",
        "--generate-password",
    )
    assert created.exit_code == 0, created
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


# -- not a database, corrupt, truncated -------------------------------------------------
def _not_a_database(kind: str, template: Path, path: Path) -> None:
    if kind == "text":
        path.write_text("name,email\nalice,a@example.com\n")
    elif kind == "random":
        path.write_bytes(b"\x00garbage!" + os.urandom(91))  # never SQLite's 16-byte magic
    else:
        data = template.read_bytes()
        path.write_bytes(data[: len(data) // 2])


COMMANDS = [
    ("users", "list"),
    ("users", "create", "bob", "--email", "b@example.com", "--generate-password"),
    ("audit", "verify"),
    ("db", "current"),
    ("db", "upgrade"),
    ("db", "check"),
]


@pytest.mark.parametrize("kind", ["text", "random", "truncated"])
def test_a_file_that_is_no_sqlite_database_is_exit_7(
    kind: str, sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "broken.db"
    _not_a_database(kind, sqlite_template, path)
    for command in COMMANDS:
        _assert_environment_error(_run(_sqlite_url(path), *command), path)
    as_json = _run(_sqlite_url(path), "-o", "json", "users", "list")
    assert as_json.error()["code"] == "database_unavailable"
    assert as_json.error()["exit_code"] == 7


def test_a_corrupt_default_database_is_exit_7(sqlite_template: Path) -> None:
    path = Path(os.environ["VUTF_DATA_DIR"]) / "vutf.db"
    path.parent.mkdir(parents=True)
    _not_a_database("truncated", sqlite_template, path)
    _assert_environment_error(_run(None, "users", "list"), path)


# -- read-only --------------------------------------------------------------------------
def _chattr(flag: str, path: Path) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} is refused here: {done.stderr.strip()}")


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Paths made immutable by the test (``chattr +i``: read-only even for root), undone after."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_database_is_read_and_verified_and_a_write_is_exit_7(
    what: str, migrated: Path, immutable: list[Path]
) -> None:
    target = migrated if what == "file" else migrated.parent
    _chattr("+i", target)
    immutable.append(target)
    url = _sqlite_url(migrated)
    listed = _run(url, "users", "list", "-o", "json")
    assert listed.exit_code == 0, listed
    assert [row["username"] for row in listed.json()] == ["alice"]
    verified = _run(url, "audit", "verify", "-o", "json")
    assert verified.exit_code == 0, verified
    assert verified.json()["ok"] is True
    assert verified.json()["checked"] == 1
    written = _run(url, "users", "create", "bob", "--email", "b@example.com", "--generate-password")
    _assert_environment_error(written, migrated)
    assert "read-only" in written.stderr


def test_the_default_database_in_a_read_only_folder_is_exit_7(immutable: list[Path]) -> None:
    folder = Path(os.environ["VUTF_DATA_DIR"])
    folder.mkdir(parents=True)
    _chattr("+i", folder)
    immutable.append(folder)
    _assert_environment_error(_run(None, "users", "list"), folder / "vutf.db")


def _in_mount_namespace(script: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    return subprocess.run(
        ["unshare", "-m", "sh", "-ec", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "VUTF": str(VUTF)},
    )


def test_audit_verify_on_a_read_only_file_system(migrated: Path) -> None:
    folder = migrated.parent
    done = _in_mount_namespace(
        f'mount --bind "{folder}" "{folder}"; mount -o remount,bind,ro "{folder}"\n'
        f'"$VUTF" --database-url "sqlite:///{migrated}" -o json audit verify\n'
        f'"$VUTF" --database-url "sqlite:///{migrated}" users deactivate alice || echo "exit $?"'
    )
    assert done.returncode == 0, done.stderr
    assert '"checked": 1' in done.stdout
    assert "exit 7" in done.stdout
    assert f"error: the database file {migrated} is read-only" in done.stderr


# -- disk full ------------------------------------------------------------------------
def test_a_full_disk_is_exit_7(migrated: Path, tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    done = _in_mount_namespace(
        f'mount -t tmpfs -o size=1m tmpfs "{mount}"\n'
        f'cp "{migrated}" "{mount}/vutf.db"\n'
        f'dd if=/dev/zero of="{mount}/filler" bs=4k 2>/dev/null || true\n'
        f'"$VUTF" --database-url "sqlite:///{mount}/vutf.db" users deactivate alice '
        '|| echo "exit $?"\n'
        f'rm "{mount}"/vutf.db*\n'
        f'VUTF_DATA_DIR="{mount}/data" "$VUTF" users list || echo "exit $?"'
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["exit 7", "exit 7"], done
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, done.stderr
    assert f"{mount}/vutf.db" in errors[0]
    assert f"{mount}/data/vutf.db" in errors[1]
    assert "internal error" not in done.stderr


# -- locked past the deadline ----------------------------------------------------------
@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_database_locked_past_the_deadline_is_exit_7(journal: str, migrated: Path) -> None:
    holder = sqlite3.connect(migrated, isolation_level=None)
    try:
        holder.execute(f"PRAGMA journal_mode={journal}")
        holder.execute("BEGIN EXCLUSIVE")
        # WAL lets readers through an exclusive writer; a rollback journal does not.
        command = ("users", "deactivate", "alice") if journal == "wal" else ("users", "list")
        result = _run(_sqlite_url(migrated), *command, env={"VUTF_DB_DEADLINE": "0.5"})
    finally:
        holder.close()
    _assert_environment_error(result, migrated)
    assert "busy" in result.stderr


def test_first_use_of_a_default_database_locked_past_the_deadline_is_exit_7() -> None:
    """The migration on first use runs under the retries too (it used to be exit 1)."""
    path = Path(os.environ["VUTF_DATA_DIR"]) / "vutf.db"
    path.parent.mkdir(parents=True)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=WAL")  # an empty database: readers get through
        holder.execute("BEGIN EXCLUSIVE")
        result = _run(None, "users", "list", env={"VUTF_DB_DEADLINE": "0.5"})
    finally:
        holder.close()
    _assert_environment_error(result, path)


# -- a database migrated by a newer vutf -------------------------------------------------
def _set_revision(database_url: str, revision: str) -> None:
    from sqlalchemy import create_engine, text

    from vutf_cli.db.engine import parse_database_url

    engine = create_engine(parse_database_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


@pytest.mark.fresh_database
def test_a_database_migrated_by_a_newer_vutf_is_exit_8(database_url: str) -> None:
    _set_revision(database_url, NEWER)
    for command in [*COMMANDS, ("db", "downgrade", "base", "--yes")]:
        result = _run(database_url, *command)
        assert result.exit_code == 8, (command, result)
        assert "this database" in result.stderr
        assert "was migrated by a newer vutf" in result.stderr
        assert NEWER in result.stderr
    assert _run(database_url, "-o", "json", "db", "current").error()["code"] == "schema_outdated"


def test_a_default_database_migrated_by_a_newer_vutf_is_exit_8(sqlite_template: Path) -> None:
    path = Path(os.environ["VUTF_DATA_DIR"]) / "vutf.db"
    path.parent.mkdir(parents=True)
    shutil.copyfile(sqlite_template, path)
    _set_revision(_sqlite_url(path), NEWER)
    result = _run(None, "users", "list")
    assert result.exit_code == 8, result
    assert "was migrated by a newer vutf" in result.stderr
