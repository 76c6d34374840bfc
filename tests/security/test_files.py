"""Files vutf creates are private; a config file that exposes a password is refused (item 13).

* The default SQLite database (no ``--database-url``; ``VUTF_DATA_DIR`` from
  the test isolation), its ``-wal`` and ``-shm`` files: mode 0600, their
  folder 0700, under umask 022 and under umask 000.  The ``-wal``/``-shm``
  files only exist while a connection is open, so they are looked at while a
  second vutf process (``audit follow``) holds the database.
* A SQLite file named by ``--database-url`` and the folder made for it, the
  ``--secret-file`` of ``keys create`` / ``rotate`` and the ``--output-file``
  of ``audit export``: 0600 whatever the umask, and an existing file is never
  silently overwritten (an export replaces it whole, by rename, only with
  ``--force``: test_atomic_output).  An existing device or named pipe given as
  ``--output-file`` (``/dev/null``) is written through as it is: never made
  0600, never removed (as root, either would break the machine).  A SQLite
  URL naming a device or a folder is refused (SQLite would put its journal
  beside it).
* A config file holding a database password and readable by group or others
  is refused (exit 2) with a message naming the file and ``chmod 600``,
  without the password; at 0600 (or 0400) it is used.  A config file without
  a password may be readable.
* vutf never creates a config file: it only reads one (so there is no
  default mode to get wrong).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.roles_support import grant_role_at
from tests.security import PASSWORD, REPO_ROOT, record, register_summary, run, run_subprocess

MODULE = "test_files"
UMASKS = [0o022, 0o000]


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> None:
    register_summary(request.config)


@pytest.fixture(autouse=True)
def _count_case() -> None:
    record(MODULE, cases=1)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _no_database_url() -> dict[str, str]:
    """The environment of a process that uses the default database."""
    env = {k: v for k, v in os.environ.items() if k != "VUTF_DATABASE_URL"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


@pytest.mark.parametrize("mask", UMASKS, ids=lambda m: f"umask-{m:03o}")
def test_the_default_database_its_wal_and_shm_and_its_folder_are_private(
    isolated_environment: Path, mask: int
) -> None:
    data_dir = Path(os.environ["VUTF_DATA_DIR"])
    database = data_dir / "vutf.db"
    assert not data_dir.exists()
    created = run_subprocess(
        ["users", "create", "alice", "--email", "a@example.com", "--password-stdin"],
        input=PASSWORD.encode(),
        umask=mask,
    )
    assert created.returncode == 0, created.stderr
    assert mode(data_dir) == 0o700
    assert mode(database) == 0o600
    # Hold the database open in a second process, then write through a third:
    # now the -wal and -shm files exist.
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vutf_cli",
            "audit",
            "follow",
            "--timeout",
            "15",
            "--interval",
            "0.1",
        ],
        env=_no_database_url(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.umask(mask) and None,
    )
    try:
        wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
        deadline = time.monotonic() + 15
        while not (wal.exists() and shm.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        written = run_subprocess(["users", "deactivate", "alice"], umask=mask)
        assert written.returncode == 0, written.stderr
        assert wal.exists(), sorted(p.name for p in data_dir.iterdir())
        assert shm.exists(), sorted(p.name for p in data_dir.iterdir())
        assert wal.stat().st_size > 0
        found = {p.name: mode(p) for p in data_dir.iterdir()}
        assert found == {"vutf.db": 0o600, "vutf.db-wal": 0o600, "vutf.db-shm": 0o600}
    finally:
        follower.terminate()
        follower.communicate(timeout=30)
    assert {mode(p) for p in data_dir.iterdir()} == {0o600}
    # vutf reads a config file; it never writes one.
    assert Path(os.environ["VUTF_CONFIG"]).read_bytes() == b""
    assert not (isolated_environment / ".config").exists()
    record(MODULE, files_checked=4)


@pytest.mark.parametrize("mask", UMASKS, ids=lambda m: f"umask-{m:03o}")
def test_a_new_sqlite_file_named_by_url_is_private(tmp_path: Path, mask: int) -> None:
    database = tmp_path / "new" / "deeper" / "vutf.db"
    with umask(mask):
        result = run(f"sqlite:///{database}", "db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert mode(database) == 0o600
    assert mode(database.parent) == 0o700
    record(MODULE, files_checked=2)


@pytest.mark.parametrize("mask", UMASKS, ids=lambda m: f"umask-{m:03o}")
def test_secret_files_and_audit_exports_are_private(
    database_url: str, tmp_path: Path, mask: int
) -> None:
    url = database_url
    created = run(
        url,
        "users",
        "create",
        "alice",
        "--email",
        "a@example.com",
        "--password-stdin",
        input=PASSWORD,
    )
    assert created.exit_code == 0, created.stderr
    grant_role_at(url, "alice")  # a key never carries more than its owner holds
    secret = tmp_path / "ci.key"
    rotated = tmp_path / "rotated.key"
    export = tmp_path / "audit.jsonl"
    with umask(mask):
        issued = run(
            url, "--json", "keys", "create", "-u", "alice", "-n", "ci", "--secret-file", str(secret)
        )
        assert issued.exit_code == 0, issued.stderr
        prefix = issued.json()["key_prefix"]
        again = run(url, "keys", "rotate", prefix, "--secret-file", str(rotated))
        assert again.exit_code == 0, again.stderr
        exported = run(url, "audit", "export", "--output-file", str(export))
        assert exported.exit_code == 0, exported.stderr
    assert mode(secret) == 0o600
    assert mode(rotated) == 0o600
    assert mode(export) == 0o600
    assert secret.read_text().startswith("vutf_")
    assert "key" not in issued.json()  # the key went to the file only

    # An existing file is never overwritten by a key (exit 4), and is left as it was.
    taken = tmp_path / "taken.key"
    taken.write_text("keep me\n")
    taken.chmod(0o644)
    refused = run(url, "keys", "create", "-u", "alice", "-n", "other", "--secret-file", str(taken))
    assert refused.exit_code == 4, refused.stderr
    assert taken.read_text() == "keep me\n"
    listed = run(url, "--json", "keys", "list", "--any-state").json()
    assert "other" not in {key["name"] for key in listed}  # no key was issued either

    # An audit export overwrites only with --force, and then makes the file private.
    old = tmp_path / "old.jsonl"
    old.write_text("old\n")
    old.chmod(0o644)
    assert run(url, "audit", "export", "--output-file", str(old)).exit_code == 4
    assert old.read_text() == "old\n"
    forced = run(url, "audit", "export", "--output-file", str(old), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert mode(old) == 0o600
    record(MODULE, files_checked=6)


def _null_device(path: Path) -> Path:
    """A character device like /dev/null (1, 3), mode 0666, at ``path`` (needs root)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    path.chmod(0o666)
    return path


def _is_untouched_stream(path: Path, kind: Callable[[int], bool], file_mode: int) -> bool:
    status = path.lstat()
    return kind(status.st_mode) and stat.S_IMODE(status.st_mode) == file_mode


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_an_audit_export_to_a_device_writes_through_it_and_leaves_it_as_it_was(
    database_url: str, tmp_path: Path, force: bool
) -> None:
    """``--output-file /dev/null`` as root must not make /dev/null 0600 (nor remove it).

    A device holds nothing to overwrite, so no --force is needed; a private
    stand-in is used so that a regression cannot break the machine's own.
    """
    device = _null_device(tmp_path / "null")
    exported = run(
        database_url, "audit", "export", "--output-file", str(device), *(["--force"] * force)
    )
    assert exported.exit_code == 0, exported.stderr
    assert _is_untouched_stream(device, stat.S_ISCHR, 0o666)
    record(MODULE, files_checked=1)


def test_an_audit_export_to_a_named_pipe_streams_into_it(database_url: str, tmp_path: Path) -> None:
    created = run(
        database_url, "users", "create", "alice", "--email", "a@example.com",
        "--password-stdin", input=PASSWORD,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    pipe = tmp_path / "audit.pipe"
    os.mkfifo(pipe)
    pipe.chmod(0o644)
    received = bytearray()

    def drain() -> None:
        with pipe.open("rb") as reader:
            received.extend(reader.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    exported = run(database_url, "audit", "export", "--output-file", str(pipe))
    reader.join(timeout=30)
    assert exported.exit_code == 0, exported.stderr
    lines = [json.loads(line) for line in received.decode().splitlines()]
    assert [line["action"] for line in lines] == ["user.create"]
    assert _is_untouched_stream(pipe, stat.S_ISFIFO, 0o644)
    record(MODULE, files_checked=1)


def test_a_failed_export_removes_its_own_file_but_never_a_device(tmp_path: Path) -> None:
    """A failure leaves no new file, the old file as it was, and the device in place.

    The failures a user meets (SIGTERM, a full disk) are in test_atomic_output.
    """
    from vutf_cli.cli.private_file import private_file

    device = _null_device(tmp_path / "null")
    new_file = tmp_path / "new.jsonl"
    old_file = tmp_path / "old.jsonl"
    old_file.write_text("old\n")

    def fail_half_way(target: Path) -> None:
        with private_file(target, force=True) as handle:
            handle.write("partial\n")
            raise RuntimeError("the export failed half way")

    for target in (device, new_file, old_file):
        with pytest.raises(RuntimeError, match="half way"):
            fail_half_way(target)
    assert _is_untouched_stream(device, stat.S_ISCHR, 0o666)
    assert not new_file.exists()
    assert old_file.read_text() == "old\n"
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    record(MODULE, files_checked=3)


@pytest.mark.parametrize("command", [["db", "upgrade"], ["users", "list"]], ids=" ".join)
def test_a_sqlite_url_naming_a_device_or_folder_is_refused(
    tmp_path: Path, command: list[str]
) -> None:
    """SQLite would write its journal beside the device (as root: into /dev)."""
    folder = tmp_path / "place"
    folder.mkdir()
    device = _null_device(folder / "null")
    for target in (device, folder):
        result = run(f"sqlite:///{target}", *command)
        assert result.exit_code == 2, result.stderr
        assert f"{target} is not a regular file" in result.stderr
    assert [path.name for path in folder.iterdir()] == ["null"]  # no journal beside it
    assert _is_untouched_stream(device, stat.S_ISCHR, 0o666)
    record(MODULE, files_checked=1)


# -- the config file ---------------------------------------------------------------------------
def _config_with(path: Path, url: str, file_mode: int) -> None:
    path.write_text(f'database_url = "{url}"\n')
    path.chmod(file_mode)


EXPOSED = [0o644, 0o640, 0o604, 0o660, 0o606, 0o666, 0o610]


@pytest.mark.parametrize("file_mode", EXPOSED, ids=lambda m: f"{m:04o}")
def test_a_config_file_with_a_password_readable_by_others_is_refused(
    isolated_environment: Path, file_mode: int
) -> None:
    config = Path(os.environ["VUTF_CONFIG"])
    password = "pw-in-the-config-file-0123"
    _config_with(config, f"postgresql://vutf:{password}@db.invalid/vutf", file_mode)
    for args in (["users", "list"], ["-o", "json", "users", "list"], ["db", "heads"]):
        result = run_subprocess(args)
        err = result.stderr.decode()
        assert result.returncode == 2, err
        assert str(config) in err
        assert f"chmod 600 {config}" in err
        assert password not in err + result.stdout.decode()
        assert "Traceback" not in err
    assert mode(config) == file_mode  # reported, not changed behind the operator's back


@pytest.mark.parametrize("file_mode", [0o600, 0o400], ids=lambda m: f"{m:04o}")
def test_a_private_config_file_with_a_password_is_used(
    database_url: str, backend: str, file_mode: int
) -> None:
    config = Path(os.environ["VUTF_CONFIG"])
    url = database_url
    if backend == "postgresql":
        # Trust authentication ignores the password: the URL still works.
        url = database_url.replace("postgres@", "postgres:pw-in-the-config-file@", 1)
    _config_with(config, url, file_mode)
    created = run_subprocess(
        ["--json", "users", "create", "alice", "--email", "a@example.com", "--password-stdin"],
        input=PASSWORD.encode(),
    )
    assert created.returncode == 0, created.stderr
    listed = run(database_url, "--json", "users", "list").json()
    assert [user["username"] for user in listed] == ["alice"]  # it went to the configured database
    assert "pw-in-the-config-file" not in created.stderr.decode()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_readable_config_file_without_a_password_is_used(database_url: str) -> None:
    config = Path(os.environ["VUTF_CONFIG"])
    # A user only the configured database holds: without the config file
    # vutf would list the (empty) default database instead.
    seeded = run(database_url, "users", "create", "alice", "--email", "a@example.com",
                 "--generate-password")  # fmt: skip
    assert seeded.exit_code == 0, seeded.stderr
    _config_with(config, database_url, 0o644)
    result = run_subprocess(["--json", "users", "list"])
    assert result.returncode == 0, result.stderr
    assert [user["username"] for user in json.loads(result.stdout)] == ["alice"]
