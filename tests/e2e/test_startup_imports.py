"""The installed ``vutf``: requests that need no database never touch it.

``--help`` (of the root and of every group) and ``--version`` answer without
creating the data directory or the SQLite file, and ``--version`` prints
exactly the version wherever it appears on the line.  Each case runs the
installed console script in a real process (what an operator runs), with a
private SQLite URL.
"""

from __future__ import annotations

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

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "VUTF_DATABASE_URL": f"sqlite:///{database_file}"}
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
    assert (run.returncode, run.stdout, run.stderr) == (0, f"vutf {__version__}\n", "")
    _assert_database_untouched(database_file)
