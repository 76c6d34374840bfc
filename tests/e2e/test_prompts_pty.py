"""Prompts that help (issue 12, item 10), on the installed `vutf` at a real terminal (a pty).

* A new password is checked against the policy before it is asked for a
  second time, and asked for again (three tries) when refused or mistyped.
* ``--password-stdin`` with stdin on a terminal is a hidden prompt, never
  an echoing read of the terminal.
* A missing required option (``users create --email``, ``keys create
  --user/--name``) is asked for on a terminal and is exit 2 without one.
* Every message is vutf's ``error:``/``hint:``; Click's ``Error:`` never shows.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import TERMINAL_TIMEOUT, Terminal, migrated_sqlite_env

GOOD = "correct horse battery staple"


def _installed_vutf() -> Path:
    beside = Path(sys.executable).parent / "vutf"
    if beside.is_file():
        return beside
    found = shutil.which("vutf")
    if found is None:
        pytest.skip("the vutf console script is not installed (pip install -e .)")
    return Path(found)


def _vutf(*args: str) -> list[str]:
    """The command line that runs the installed vutf with ``args``."""
    return [sys.executable, str(_installed_vutf()), *args]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return migrated_sqlite_env(tmp_path, _vutf(), columns=80)


def test_a_new_password_is_checked_before_its_confirmation_and_asked_again(
    env: dict[str, str],
) -> None:
    term = Terminal(_vutf("users", "create", "alice"), env)
    term.expect(r"Email address: ?$")
    term.type("alice@example.com")
    term.expect(r"Password: ?$")
    term.type("short")
    # Refused at once, with the rule: no confirmation asked for a password that cannot be used.
    term.expect(r"error: password too short: it must be at least 15 characters")
    assert "confirmation" not in term.seen
    term.expect(r"Password: ?$")
    term.type(GOOD)
    term.expect(r"Repeat for confirmation: ?$")
    term.type(GOOD + " typo")
    term.expect(r"error: the two passwords do not match")
    term.expect(r"Password: ?$")
    term.type(GOOD)
    term.expect(r"Repeat for confirmation: ?$")
    term.type(GOOD)
    assert term.wait() == 0, term.seen
    assert "created user 'alice'" in term.seen
    assert GOOD not in term.seen  # hidden: never echoed
    assert "short" not in term.seen.replace("too short", "")
    assert "Error:" not in term.seen


def test_three_refused_passwords_are_exit_2(env: dict[str, str]) -> None:
    term = Terminal(_vutf("users", "create", "bob", "--email", "bob@example.com"), env)
    for _ in range(3):
        term.expect(r"Password: ?$")
        term.type("tiny")
    assert term.wait() == 2, term.seen
    # Twice before asking again, and once as the command's own error.
    assert term.seen.count("error: password too short") == 3
    assert "Error:" not in term.seen


def test_password_stdin_on_a_terminal_prompts_hidden(env: dict[str, str]) -> None:
    term = Terminal(
        _vutf("users", "create", "carol", "--email", "carol@example.com", "--password-stdin"), env
    )
    term.expect(r"Password: ?$")
    term.type(GOOD)
    term.expect(r"Repeat for confirmation: ?$")
    term.type(GOOD)
    assert term.wait() == 0, term.seen
    assert GOOD not in term.seen
    check = Terminal(_vutf("users", "check-password", "carol", "--password-stdin"), env)
    check.expect(r"Password: ?$")
    check.type(GOOD)
    assert check.wait() == 0, check.seen
    assert GOOD not in check.seen


def test_missing_key_options_are_asked_for(env: dict[str, str], tmp_path: Path) -> None:
    subprocess.run(
        _vutf("users", "create", "dave", "--email", "dave@example.com", "--generate-password",
              "--superuser"),
        env=env, check=True, capture_output=True, timeout=TERMINAL_TIMEOUT,
    )  # fmt: skip
    term = Terminal(_vutf("keys", "create", "--secret-file", str(tmp_path / "ci.key")), env)
    term.expect(r"Owner \(username, email or id\): ?$")
    term.type("dave")
    term.expect(r"Key name: ?$")
    term.type("ci")
    assert term.wait() == 0, term.seen
    assert (tmp_path / "ci.key").read_text().startswith("vutf_")
    assert "Error:" not in term.seen


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["users", "create", "erin"], "--email"),
        (["keys", "create", "--name", "ci"], "--user"),
        (["keys", "create", "--user", "erin"], "--name"),
    ],
)
def test_a_missing_required_option_without_a_terminal_is_exit_2(
    env: dict[str, str], args: list[str], option: str
) -> None:
    done = subprocess.run(
        _vutf(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TERMINAL_TIMEOUT,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"error: missing option {option}\nhint: ")
    assert "Error:" not in done.stderr


def test_a_confirmation_answered_wrongly_is_asked_again_in_vutfs_style(
    env: dict[str, str],
) -> None:
    subprocess.run(
        _vutf("users", "create", "frank", "--email", "frank@example.com", "--generate-password"),
        env=env,
        check=True,
        capture_output=True,
        timeout=TERMINAL_TIMEOUT,
    )
    term = Terminal(_vutf("users", "delete", "frank"), env)
    term.expect(r"\[y/N\]: ?$")
    term.type("maybe")
    term.expect(r"error: answer y or n")
    term.expect(r"\[y/N\]: ?$")
    term.type("n")
    assert term.wait() == 130, term.seen
    assert "cancelled; nothing was changed" in term.seen
    assert "Error:" not in term.seen
