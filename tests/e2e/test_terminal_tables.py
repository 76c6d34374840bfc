"""Tables and the pager on a real terminal: the installed `vutf` in tmux at 120, 80 and 60 columns.

What an operator sees (README "Tables"): a list fits the terminal without
splitting an identifier, a deleted user says ``deleted``, a long list is
paged by ``less -FRX`` (``q`` leaves it, exit 0) unless ``--no-pager`` or
``VUTF_PAGER=cat``, and a pipe is never paged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.audit_seed import bulk_seed
from tests.e2e.harness import VUTF, Tmux, installed_env
from vutf_cli.db.database import Database
from vutf_cli.settings import load_settings

PASSWORD = "correct horse battery staple"
LONG_EMAIL = "dave.with.a.rather.long.address@example-company.com"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def terminal_env(isolated_environment: Path) -> dict[str, str]:
    env = installed_env(None)  # the isolated default database
    # The terminal's own size, not the suite's COLUMNS; the default pager.
    for name in ("COLUMNS", "LINES", "PAGER", "LESS", "VUTF_PAGER"):
        env.pop(name, None)
    env["TERM"] = "xterm-256color"
    return env


@pytest.fixture
def tmux_at(tmp_path: Path, terminal_env: dict[str, str]) -> Iterator[Callable[[int], Tmux]]:
    opened: list[Tmux] = []

    def open_at(width: int) -> Tmux:
        opened.append(Tmux(tmp_path, width, terminal_env))
        return opened[-1]

    yield open_at
    for tmux in opened:
        tmux.close()


def _vutf(env: dict[str, str], *args: str, input: str | None = None) -> None:
    done = subprocess.run([str(VUTF), *args], env=env, input=input, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def users(terminal_env: dict[str, str]) -> None:
    for name, email in (("alice", "alice@example.com"), ("bob", "bob@example.com")):
        _vutf(terminal_env, "users", "create", name, "--email", email,
              "--full-name", f"{name.title()} of the Rather Long Full Name Department",
              "--password-stdin", input=PASSWORD)  # fmt: skip
    _vutf(terminal_env, "users", "create", "dave-the-long-username", "--email", LONG_EMAIL,
          "--password-stdin", input=PASSWORD)  # fmt: skip
    _vutf(terminal_env, "--yes", "users", "delete", "bob")


@pytest.mark.parametrize("width", [120, 80, 60])
def test_a_user_list_fits_without_splitting_identifiers(
    users: None, tmux_at: Callable[[int], Tmux], width: int
) -> None:
    tmux = tmux_at(width)
    table = tmux.run_to_end("vutf users list --include-deleted")
    header = table[0].split()
    assert header[0] == "username"
    assert "state" in header
    assert all(len(line) <= width for line in table), table
    rows = {line.split()[0]: line for line in table[2:]}
    assert set(rows) == {"alice", "bob", "dave-the-long-username"}
    assert "deleted" in rows["bob"].split()
    assert "yes" not in rows["bob"].split()[:3]
    if "email" in header:
        assert LONG_EMAIL in rows["dave-the-long-username"]
    if width == 120:
        assert header[:3] == ["username", "email", "state"]
    else:
        assert "email" not in header  # the long address cannot fit: the column goes whole
    if width == 60:
        assert header == ["username", "state", "full_name", "superuser"]
        assert "…" in rows["alice"]  # the full name, shortened


@pytest.fixture
def long_audit_log(terminal_env: dict[str, str]) -> int:
    os.environ.pop("COLUMNS", None)
    db = Database(load_settings({}))
    try:
        db.ensure_schema()
        bulk_seed(db, 10_000)
    finally:
        db.dispose()
    return 10_000


def test_a_long_list_is_paged_and_q_leaves_with_exit_0(
    long_audit_log: int, tmux_at: Callable[[int], Tmux]
) -> None:
    tmux = tmux_at(80)
    tmux.clear()
    tmux.run("vutf audit list --all; echo rc=$?")
    # less shows the first screen while vutf is still writing the rest.
    tmux.wait_for(lambda: tmux.lines()[-1].startswith(":"), "the pager's prompt")
    screen = tmux.lines()
    header = screen[0].split()
    assert header[0] == "seq"
    assert {"action", "status"} <= set(header)
    assert "resource_type" not in header  # the first to go at 80 columns
    assert all(len(line) <= 80 for line in screen)
    assert screen[2].split()[0] == "10000"
    assert not any(line.startswith("rc=") for line in screen)
    tmux.keys("q")
    tmux.wait_for(lambda: "rc=0" in tmux.lines(), "exit 0 after q")


@pytest.mark.parametrize(
    "command",
    [
        "vutf audit list --all --no-pager",
        "VUTF_PAGER=cat vutf audit list --all",
        "vutf audit list --all | tail -n 1",
    ],
)
def test_no_pager_when_asked_or_piped(
    long_audit_log: int, tmux_at: Callable[[int], Tmux], command: str
) -> None:
    tmux = tmux_at(80)
    lines = tmux.run_to_end(command)
    rows = [line for line in lines if line[:1].isdigit()]
    assert rows[-1].split()[0] == "1"  # the last row reached the terminal itself


def test_audit_follow_fits_80_columns_as_audit_list_does(
    users: None, terminal_env: dict[str, str], tmux_at: Callable[[int], Tmux]
) -> None:
    # The users fixture's real entries: uuid resource ids, an actor, user.* actions.
    tmux = tmux_at(80)
    table = tmux.run_to_end("vutf audit list --reverse --no-pager 2>/dev/null")
    header, listed = table[0].split(), table[-3:]
    assert "resource_id" not in header  # what 80 columns drop, for list and follow alike
    followed = tmux.run_to_end("vutf audit follow -n 3 --timeout 0 2>/dev/null")
    # No entry wraps onto a second line: the header, its rule, then one line per entry.
    assert len(followed) == 5, followed
    assert followed[0].split() == header
    assert set(followed[1]) == {"─"}
    assert [line.split() for line in followed[2:]] == [line.split() for line in listed]
    assert all(len(line) <= 80 for line in followed)
    # An entry appended while it waits is one line of the same columns too.
    tmux.clear()
    tmux.run("vutf audit follow -n 0 --max-events 1 --timeout 60 2>/dev/null; echo rc=$?")
    tmux.wait_for(lambda: any(set(line) == {"─"} for line in tmux.lines()), "the header")
    _vutf(terminal_env, "users", "create", "erin", "--email", "erin@example.com",
          "--password-stdin", input=PASSWORD)  # fmt: skip
    tmux.wait_for(lambda: "rc=0" in tmux.lines(), "the new entry and exit 0")
    lines = tmux.lines()
    rule = next(i for i, line in enumerate(lines) if set(line) == {"─"})
    assert lines[rule - 1].split() == header
    new = lines[rule + 1]
    assert new.split()[0].isdigit()
    assert "user.create" in new.split()
    assert lines[rule + 2] == "rc=0"
    assert all(len(line) <= 80 for line in lines)
