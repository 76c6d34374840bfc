"""Every file and folder vutf creates is private, whatever the umask and the URL form (item 10).

The installed ``vutf`` runs under umask 000 (the worst case: nothing is
masked away) against every form of SQLite URL that connects: a relative
path, an absolute one, ``sqlite+pysqlite://``, ``file:`` URIs (relative,
absolute, ``file://localhost/…``, with ``mode=rwc``) and ``file:x.db``
without ``uri=true`` (a file of that name).  Each creates its database,
migrates it and writes while a second process holds it open (``audit
follow``), so SQLite's ``-wal`` and ``-shm`` exist; every file found under
the test's folder is then 0600 and every folder vutf made 0700.  The data
folder of the default database and every folder above it that vutf made
are 0700.  ``--secret-file`` and ``--output-file`` are 0600 too.  A URL
form vutf could not make private (``vfs=``, ``modeof=``, another driver, a
URI naming another host) is exit 2 with nothing created.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.security import PASSWORD, record, register_summary

MODULE = "test_private_modes"
TIMEOUT = 90.0


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> None:
    register_summary(request.config)


def _installed_vutf() -> Path:
    beside = Path(sys.executable).parent / "vutf"
    if beside.is_file():
        return beside
    found = shutil.which("vutf")
    if found is None:
        pytest.skip("the vutf console script is not installed (pip install -e .)")
    return Path(found)


def _unmasked() -> None:
    os.umask(0)


Vutf = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def vutf(work: Path) -> Vutf:
    executable = str(_installed_vutf())

    def run(
        *args: str, url: str | None = None, input: str = ""
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "VUTF_DB_DEADLINE": "5"}
        if url is not None:
            env["VUTF_DATABASE_URL"] = url
        return subprocess.run(
            [executable, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            timeout=TIMEOUT,
            preexec_fn=_unmasked,
            check=False,
        )

    return run


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def modes_under(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): mode(path) for path in sorted(folder.rglob("*"))}


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


@contextmanager
def held_open(url: str, work: Path) -> Iterator[None]:
    """While in the block, a second vutf process holds the database (so -wal and -shm exist)."""
    follower = subprocess.Popen(
        [str(_installed_vutf()), "audit", "follow", "--timeout", "30", "--interval", "0.1"],
        env={**os.environ, "VUTF_DATABASE_URL": url},
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_unmasked,
    )
    try:
        yield
    finally:
        ended = follower.poll()
        follower.terminate()
        _, stderr = follower.communicate(timeout=TIMEOUT)
        assert ended is None, stderr  # it held the database all along


# (url as given, from the folder "work"; the database file it names, relative to "work")
URL_FORMS = [
    ("sqlite:///rel.db", "rel.db"),
    ("sqlite:///new/deeper/rel.db", "new/deeper/rel.db"),
    ("sqlite:////{work}/abs/abs.db", "abs/abs.db"),
    ("sqlite+pysqlite:///{work}/py/py.db", "py/py.db"),
    ("sqlite:///file:uri.db?uri=true", "uri.db"),
    ("sqlite:///file:{work}/u1/u2/uri.db?mode=rwc&uri=true", "u1/u2/uri.db"),
    ("sqlite:///file://localhost{work}/local.db?cache=shared&uri=true", "local.db"),
    ("sqlite:///file:{work}/esc%2520aped.db?uri=true", "esc aped.db"),
    ("sqlite:///file:plain.db", "file:plain.db"),  # no uri=true: a file named so
]


def _migrate_with_a_superuser(vutf: Vutf, url: str) -> None:
    """The schema at ``url``, and alice, a superuser (the actor of what follows)."""
    ok(vutf("db", "upgrade", url=url))
    args = ("users", "create", "alice", "--email", "a@example.com", "--password-stdin")
    ok(vutf(*args, "--superuser", url=url, input=PASSWORD))


@pytest.mark.parametrize(("form", "database"), URL_FORMS, ids=[f for f, _ in URL_FORMS])
def test_every_sqlite_url_form_creates_private_files_and_folders(
    vutf: Vutf, work: Path, form: str, database: str
) -> None:
    url = form.format(work=work)
    _migrate_with_a_superuser(vutf, url)
    files = work / database
    wal, shm = Path(f"{files}-wal"), Path(f"{files}-shm")
    with held_open(url, work):
        deadline = time.monotonic() + 30
        while not (wal.exists() and shm.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        ok(vutf("users", "deactivate", "alice", url=url))
        assert wal.exists(), modes_under(work)
        assert shm.exists(), modes_under(work)
        seen = modes_under(work)
    assert files.is_file()
    for name, found in seen.items():
        expected = 0o700 if (work / name).is_dir() else 0o600
        assert found == expected, (name, oct(found), seen)
    assert len(seen) >= 3
    record(MODULE, cases=1, files_checked=len(seen))


def test_the_default_database_folder_and_the_folders_above_it_are_private(
    vutf: Vutf, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(work / "xdg" / "share"))
    monkeypatch.delenv("VUTF_DATA_DIR")
    ok(vutf("users", "list"))
    seen = modes_under(work)
    assert seen == {
        "xdg": 0o700,
        "xdg/share": 0o700,
        "xdg/share/vutf": 0o700,
        "xdg/share/vutf/vutf.db": 0o600,
    }, seen
    record(MODULE, cases=1, files_checked=len(seen))


def test_an_explicit_data_dir_is_made_private_at_every_level(
    vutf: Vutf, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VUTF_DATA_DIR", str(work / "a" / "b" / "c"))
    ok(vutf("users", "list"))
    seen = modes_under(work)
    assert seen == {"a": 0o700, "a/b": 0o700, "a/b/c": 0o700, "a/b/c/vutf.db": 0o600}, seen
    record(MODULE, cases=1, files_checked=len(seen))


def test_secret_files_and_exports_are_private_under_umask_000(vutf: Vutf, work: Path) -> None:
    url = "sqlite:///file:keys.db?mode=rwc&uri=true"
    _migrate_with_a_superuser(vutf, url)
    ok(vutf("keys", "create", "-u", "alice", "-n", "ci", "--secret-file", "ci.key", url=url))
    ok(vutf("audit", "export", "--output-file", "audit.jsonl", url=url))
    ok(vutf("audit", "export", "--output-file", "audit.jsonl", "--force", url=url))
    assert mode(work / "ci.key") == 0o600
    assert mode(work / "audit.jsonl") == 0o600
    assert set(modes_under(work).values()) == {0o600}
    record(MODULE, cases=1, files_checked=3)


REFUSED = [
    ("sqlite:///file:v.db?vfs=unix-dotfile&uri=true", "vfs="),
    ("sqlite:///file:m.db?modeof=/etc/passwd&uri=true", "modeof="),
    ("sqlite:///file:v.db?uri=true&vfs=unix", "vfs="),
    ("sqlite:///file://elsewhere/x.db?uri=true", "not on 'elsewhere'"),
    ("sqlite+aiosqlite:///a.db", "unsupported driver"),
    ("sqlite:///file:x.db?mode=rwx&uri=true", "unknown SQLite URI mode"),
]


@pytest.mark.parametrize(("url", "said"), REFUSED, ids=[u for u, _ in REFUSED])
def test_a_url_form_that_cannot_be_made_private_is_refused_before_anything_is_created(
    vutf: Vutf, work: Path, url: str, said: str
) -> None:
    for args in (("db", "upgrade"), ("users", "list"), ("db", "status")):
        result = vutf(*args, url=url)
        assert result.returncode == 2, (args, result.stderr)
        assert said in result.stderr
        assert "Traceback" not in result.stderr
    assert list(work.iterdir()) == []
    record(MODULE, cases=1)


def test_sqlite_gives_its_journal_the_private_mode_of_the_file_vutf_created(
    work: Path,
) -> None:
    """-journal (rollback mode, which vutf itself never uses) follows the same rule."""
    script = (
        "import os, sqlite3, sys\n"
        "from vutf_cli.db.sqlite_files import create_database_file\n"
        "from pathlib import Path\n"
        "path = Path(sys.argv[1])\n"
        "create_database_file(path)\n"
        "connection = sqlite3.connect(path, isolation_level=None)\n"
        "connection.execute('PRAGMA journal_mode=DELETE')\n"
        "connection.execute('CREATE TABLE t (x)')\n"
        "connection.execute('BEGIN IMMEDIATE')\n"
        "connection.execute('INSERT INTO t VALUES (1)')\n"
        "journal = Path(str(path) + '-journal')\n"
        "print(oct(os.stat(journal).st_mode & 0o777))\n"
        "connection.execute('COMMIT')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(work / "j" / "rollback.db")],
        capture_output=True,
        text=True,
        preexec_fn=_unmasked,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0o600"
    assert mode(work / "j") == 0o700
    assert mode(work / "j" / "rollback.db") == 0o600
    record(MODULE, cases=1, files_checked=3)
