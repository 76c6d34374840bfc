"""``--output-file`` is replaced atomically and only as a file; SIGTERM is Ctrl-C (issue 11 item 5).

* ``audit export --output-file F --force`` writes a temporary file of mode
  0600 (whatever the umask) beside F and renames it over F once complete: a
  second hard link to the old F keeps the old text (it was never truncated),
  and a symlinked folder on the way to F is fine.
* Interrupted half way by SIGTERM, SIGINT or SIGHUP (the installed ``vutf``, on
  SQLite and on PostgreSQL, where the rows come through COPY): exit 130, the old F
  intact or no F at all, no temporary file left.  The process is stopped with
  SIGSTOP while its temporary file holds part of the export, so the signal
  lands mid-stream however fast the machine is.
* A full disk (a 64 KiB tmpfs mounted in a private mount namespace with
  ``unshare -m``; skipped where that needs privileges we lack) and a full
  device (a private ``/dev/full``): exit 7 with one line, the old F intact,
  the device left as it was.
* A symbolic link as F is refused with exit 2, with or without ``--force``,
  and neither the link nor what it points to changes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.security import PASSWORD, record, register_summary, run

if TYPE_CHECKING:
    from vutf_cli.db.database import Database

MODULE = "test_atomic_output"
SEEDED_ROWS = 5000  # a few MB of JSON lines: far beyond the tiny tmpfs
OLD_TEXT = "the previous export\n"


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> None:
    register_summary(request.config)


@pytest.fixture(autouse=True)
def _count_case() -> None:
    record(MODULE, cases=1)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _installed_vutf() -> Path:
    beside = Path(sys.executable).parent / "vutf"
    found = str(beside) if beside.is_file() else shutil.which("vutf")
    if found is None:
        pytest.skip("the vutf console script is not installed (pip install -e .)")
    return Path(found)


@pytest.fixture(scope="module")
def seeded_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database holding SEEDED_ROWS chained audit rows, built once per module."""
    from tests.audit_seed import bulk_seed
    from vutf_cli.db.database import Database
    from vutf_cli.settings import Settings

    path = tmp_path_factory.mktemp("seeded") / "seeded.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(Settings(database_url=f"sqlite:///{path}", argon2_profile="test"))
    try:
        bulk_seed(database, SEEDED_ROWS)
    finally:
        database.dispose()
    with sqlite3.connect(path) as conn:  # everything in the main file, so a copy is whole
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


@pytest.fixture
def seeded_env(seeded_template: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a vutf process using a private copy of the seeded database."""
    folder = tmp_path / "database"
    folder.mkdir()
    shutil.copyfile(seeded_template, folder / "vutf.db")
    return {**os.environ, "VUTF_DATABASE_URL": f"sqlite:///{folder / 'vutf.db'}"}


def _old_export(folder: Path) -> Path:
    target = folder / "audit.jsonl"
    target.write_text(OLD_TEXT)
    target.chmod(0o644)
    return target


# -- a complete export --------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o000], ids=lambda m: f"umask-{m:03o}")
def test_force_renames_a_private_file_over_the_old_one(
    database_url: str, tmp_path: Path, mask: int
) -> None:
    created = run(
        database_url, "users", "create", "alice", "--email", "a@example.com",
        "--password-stdin", input=PASSWORD,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    real = tmp_path / "exports"
    real.mkdir()
    via_link = tmp_path / "exports-link"
    via_link.symlink_to(real, target_is_directory=True)  # a symlinked folder is fine
    target = _old_export(real)
    second_name = tmp_path / "hard-link.jsonl"
    os.link(target, second_name)

    with umask(mask):
        replaced = run(
            database_url, "audit", "export", "--output-file", str(via_link / target.name), "--force"
        )
        created_new = run(database_url, "audit", "export", "--output-file", str(real / "new.jsonl"))
    assert replaced.exit_code == 0, replaced.stderr
    assert created_new.exit_code == 0, created_new.stderr
    for written in (target, real / "new.jsonl"):
        assert [json.loads(line)["action"] for line in written.read_text().splitlines()] == [
            "user.create"
        ]
        assert mode(written) == 0o600
    # Renamed over, never truncated: the old file's other name still holds the old text.
    assert second_name.read_text() == OLD_TEXT
    assert sorted(os.listdir(real)) == ["audit.jsonl", "new.jsonl"]
    record(MODULE, files_checked=3)


# -- interrupted half way -----------------------------------------------------------------------
def _partial_temp_file(folder: Path, process: subprocess.Popen[bytes]) -> Path:
    """The temporary file once it holds part of the export (fails if the export ends first)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in os.scandir(folder):
            if entry.name.endswith(".tmp") and entry.stat().st_size > 0:
                return Path(entry.path)
        assert process.poll() is None, "the export ended before a temporary file held any of it"
        time.sleep(0.0005)
    pytest.fail("no temporary file appeared within 30 s")


def _interrupt_export_mid_stream(
    env: dict[str, str], tmp_path: Path, sig: signal.Signals, *, old_file: bool
) -> None:
    """Send ``sig`` to an export while its temporary file holds part of it; check what is left."""
    folder = tmp_path / "exports"
    folder.mkdir()
    target = _old_export(folder) if old_file else folder / "audit.jsonl"
    process = subprocess.Popen(
        [_installed_vutf(), "audit", "export", "--output-file", str(target), "--force"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.umask(0) and None,
    )
    try:
        temp = _partial_temp_file(folder, process)
        process.send_signal(signal.SIGSTOP)  # from here on the signal lands mid-stream
        assert temp.exists(), "the export finished before it could be stopped"
        assert mode(temp) == 0o600  # private from the start, even under umask 000
        process.send_signal(sig)
        process.send_signal(signal.SIGCONT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr.decode()
    assert "Traceback" not in stderr.decode()  # ended like Ctrl-C: quietly, exit 130
    assert os.listdir(folder) == (["audit.jsonl"] if old_file else [])
    if old_file:
        assert target.read_text() == OLD_TEXT
        assert mode(target) == 0o644
    record(MODULE, files_checked=1)


@pytest.mark.parametrize(
    ("sig", "old_file"),
    [(signal.SIGTERM, True), (signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGHUP, True)],
    ids=[
        "SIGTERM-over-old-file",
        "SIGTERM-new-file",
        "SIGINT-over-old-file",
        "SIGHUP-over-old-file",
    ],
)
def test_a_signal_mid_export_keeps_the_old_file_and_leaves_no_temporary_file(
    seeded_env: dict[str, str], tmp_path: Path, sig: signal.Signals, old_file: bool
) -> None:
    _interrupt_export_mid_stream(seeded_env, tmp_path, sig, old_file=old_file)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_mid_copy_on_postgresql_keeps_the_old_file(
    db: Database, database_url: str, tmp_path: Path, sig: signal.Signals
) -> None:
    """On PostgreSQL the rows arrive through COPY: SIGTERM (or a hang-up) must end that stream
    too."""
    from tests.audit_seed import bulk_seed

    bulk_seed(db, SEEDED_ROWS)
    env = {**os.environ, "VUTF_DATABASE_URL": database_url}
    _interrupt_export_mid_stream(env, tmp_path, sig, old_file=True)


# -- a full disk ------------------------------------------------------------------------------
_TINY_DISK = """
mount -t tmpfs -o size=64k,mode=0700 vutf-test "$1" || exit 99
printf 'the previous export\\n' > "$1/audit.jsonl"
"$2" audit export --output-file "$1/audit.jsonl" --force 2> "$3/forced.err"
echo "forced=$?"
"$2" audit export --output-file "$1/new.jsonl" 2> "$3/new.err"
echo "new=$?"
echo "old=$(cat "$1/audit.jsonl")"
echo "left=$(ls -A "$1" | tr '\\n' ' ')"
"""


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary_file(
    seeded_env: dict[str, str], tmp_path: Path
) -> None:
    """The export fills a 64 KiB tmpfs: exit 7 with one line, the old file intact."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("a tiny tmpfs needs root and unshare(1) (a private mount namespace)")
    probe = subprocess.run([unshare, "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not permitted here: {probe.stderr.decode().strip()}")
    disk = tmp_path / "tiny"
    disk.mkdir()
    # The tmpfs exists only inside the namespace, so the checks run there too.
    done = subprocess.run(
        [unshare, "-m", "--propagation", "private", "sh", "-c", _TINY_DISK, "sh",
         str(disk), str(_installed_vutf()), str(tmp_path)],
        env=seeded_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode == 99:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    report = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert report["forced"] == "7", (tmp_path / "forced.err").read_text()
    assert report["new"] == "7", (tmp_path / "new.err").read_text()
    assert report["old"] == OLD_TEXT.strip()
    assert report["left"].split() == ["audit.jsonl"]
    for name in ("forced.err", "new.err"):
        lines = (tmp_path / name).read_text().splitlines()
        assert len(lines) == 1, lines
        assert "No space left on device" in lines[0]
    assert "is unchanged" in (tmp_path / "forced.err").read_text()
    record(MODULE, files_checked=2)


def test_a_full_device_is_exit_7_and_left_as_it_was(
    seeded_env: dict[str, str], tmp_path: Path
) -> None:
    """A private ``/dev/full`` (1, 7): written through, the error is one line, exit 7."""
    device = tmp_path / "full"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    device.chmod(0o666)
    result = run(seeded_env["VUTF_DATABASE_URL"], "audit", "export", "--output-file", str(device))
    assert result.exit_code == 7, result.stderr
    assert "No space left on device" in result.stderr
    status = device.lstat()
    assert stat.S_ISCHR(status.st_mode)
    assert stat.S_IMODE(status.st_mode) == 0o666
    record(MODULE, files_checked=1)


# -- a symbolic link --------------------------------------------------------------------------
@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_a_symlink_target_is_refused_and_nothing_changes(
    database_url: str, tmp_path: Path, force: bool
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    pointed_to = _old_export(folder)
    link = folder / "link.jsonl"
    link.symlink_to(pointed_to)
    dangling = folder / "dangling.jsonl"
    dangling.symlink_to(folder / "would-be-created.jsonl")
    for target in (link, dangling):
        refused = run(
            database_url, "audit", "export", "--output-file", str(target), *["--force"] * force
        )
        assert refused.exit_code == 2, refused.stderr
        assert "symbolic link" in refused.stderr
        assert target.is_symlink()
    assert pointed_to.read_text() == OLD_TEXT
    assert mode(pointed_to) == 0o644
    assert sorted(os.listdir(folder)) == ["audit.jsonl", "dangling.jsonl", "link.jsonl"]
    record(MODULE, files_checked=3)
