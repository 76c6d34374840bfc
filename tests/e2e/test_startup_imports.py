"""The installed ``vutf``: requests import and touch only what they need.

``--help`` (of the root and of every group) and ``--version`` answer without
creating the data directory or the SQLite file, and ``--version`` prints
exactly the version wherever it appears on the line.  A short command on a
schema at head (``users create``, ``db upgrade`` with nothing to do) never
imports Alembic, and nothing but Alembic's own command line loads its
logging configuration machinery.  Each case runs the installed console
script in a real process (what an operator runs), with a private SQLite URL;
what a process imported is read from Python's own ``-X importtime`` report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vutf_cli import __version__

TIMEOUT = 120.0
GROUPS = ("db", "users", "keys", "audit")


def _installed_vutf() -> Path:
    beside = Path(sys.executable).parent / "vutf"
    if beside.is_file():
        return beside
    found = shutil.which("vutf")
    if found is None:
        message = "the vutf console script is not installed (pip install -e .)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return Path(found)


RunVutf = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    return tmp_path / "vutf.db"


@pytest.fixture
def run_vutf(database_file: Path, tmp_path: Path) -> RunVutf:
    """Run the installed vutf with a private SQLite URL."""
    script = _installed_vutf()

    def run(*args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "VUTF_DATABASE_URL": f"sqlite:///{database_file}"}
        if importtime:
            env["PYTHONPROFILEIMPORTTIME"] = "1"
        return subprocess.run(
            [sys.executable, str(script), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    return run


def _assert_database_untouched(database_file: Path) -> None:
    assert not database_file.exists(), "a cheap request created the database"
    assert not Path(os.environ["VUTF_DATA_DIR"]).exists(), "a cheap request created the data dir"


def test_root_help_touches_no_database(run_vutf: RunVutf, database_file: Path) -> None:
    run = run_vutf("--help")
    assert run.returncode == 0, run.stderr
    assert "Usage: vutf" in run.stdout
    _assert_database_untouched(database_file)


@pytest.mark.parametrize("group", GROUPS)
def test_group_help_touches_no_database(run_vutf: RunVutf, database_file: Path, group: str) -> None:
    run = run_vutf(group, "--help")
    assert run.returncode == 0, run.stderr
    assert f"Usage: vutf {group}" in run.stdout
    _assert_database_untouched(database_file)


@pytest.mark.parametrize("args", [["--version"], ["--json", "--version"]])
def test_version_touches_no_database(
    run_vutf: RunVutf, database_file: Path, args: list[str]
) -> None:
    run = run_vutf(*args)
    assert (run.returncode, run.stderr) == (0, "")
    if "--json" in args:
        assert json.loads(run.stdout)["vutf"] == __version__
    else:
        assert run.stdout.startswith(f"vutf {__version__}\nPython ")
    _assert_database_untouched(database_file)


def _imported(run: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules the process imported, from its ``-X importtime`` lines on stderr."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def _top_packages(modules: set[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}


# What a command at head has no use for: migrations (Alembic, its Mako
# templates) and the logging configuration only Alembic's CLI reads.
MIGRATION_MODULES = ("alembic", "mako", "vutf_cli.db.migrations", "logging.config")


def _upgrade(run_vutf: RunVutf) -> None:
    run = run_vutf("db", "upgrade")
    assert run.returncode == 0, run.stderr


def test_users_create_imports_no_migration_machinery(run_vutf: RunVutf, tmp_path: Path) -> None:
    _upgrade(run_vutf)
    password = tmp_path / "password.txt"
    password.write_text("correct horse battery staple", encoding="utf-8")
    run = run_vutf(
        "users",
        "create",
        "alice",
        "--email",
        "alice@example.com",
        "--password-file",
        str(password),
        importtime=True,
    )
    assert run.returncode == 0, run.stderr
    imported = _imported(run)
    assert "vutf_cli.services.users" in imported  # the report is there and read right
    assert not imported & set(MIGRATION_MODULES)
    # Plain text output: no rich; no identity-file machinery either.
    assert not _top_packages(imported) & {"alembic", "mako", "rich", "yaml", "jsonschema"}


def test_db_upgrade_at_head_imports_no_alembic(run_vutf: RunVutf) -> None:
    _upgrade(run_vutf)
    run = run_vutf("db", "upgrade", importtime=True)
    assert run.returncode == 0, run.stderr
    imported = _imported(run)
    assert "vutf_cli.services.db" in imported
    assert not imported & set(MIGRATION_MODULES)
    assert "argon2" not in _top_packages(imported)


def test_fresh_db_upgrade_imports_only_the_migration(
    run_vutf: RunVutf, database_file: Path
) -> None:
    run = run_vutf("db", "upgrade", importtime=True)
    assert run.returncode == 0, run.stderr
    assert database_file.exists()
    imported = _imported(run)
    assert "vutf_cli.db.migrations" in imported
    # No password hashing, and not the logging setup of Alembic's own CLI.
    assert "logging.config" not in imported
    assert "argon2" not in _top_packages(imported)
