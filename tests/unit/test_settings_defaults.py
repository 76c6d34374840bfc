"""Settings defaults that are computed without their usual modules.

``default_actor`` reads the user name from the variables ``getpass.getuser``
reads first, and the host name from ``os.uname``, so that reading settings
imports neither getpass nor socket; the result must not change.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import pytest

from vutf_cli.settings import default_actor

USER_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")


def test_actor_from_the_environment_is_what_getpass_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USERNAME", "fourth")
    monkeypatch.setenv("USER", "second")
    assert default_actor() == f"{getpass.getuser()}@{socket.gethostname()}"
    assert default_actor().startswith("second@")


def test_actor_without_variables_falls_back_to_getpass(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    try:
        expected = f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        expected = f"unknown@{socket.gethostname()}"
    assert default_actor() == expected


def test_the_default_database_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative ``VUTF_DATA_DIR`` still gives messages an absolute path (issue 12 item 1)."""
    from tests.cli.conftest import invoke

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VUTF_DATA_DIR", "relative-data")
    result = invoke(["-o", "json", "db", "status"])
    assert result.exit_code == 0, result.stderr
    assert result.json()["database"] == f"sqlite:///{tmp_path}/relative-data/vutf.db"
    # Looking does not create it; the first command that uses it does, and says where.
    assert not (tmp_path / "relative-data" / "vutf.db").exists()
    created = invoke(["users", "list"])
    assert created.exit_code == 0, created.stderr
    assert f"{tmp_path}/relative-data/vutf.db" in created.stderr
    assert (tmp_path / "relative-data" / "vutf.db").is_file()
