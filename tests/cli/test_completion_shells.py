"""The committed completion scripts in the real bash, zsh and fish.

A fake ``vutf`` stands first on PATH: it records each call in a file and
answers ``alice`` and ``alan``.  Commands, options and fixed choices must be
completed with the file absent afterwards (no process started at <TAB>);
usernames must come from that fake.

* bash: source ``completions/vutf.bash``, set ``COMP_WORDS``/``COMP_CWORD`` as
  readline does, call the function ``complete -p vutf`` names, read ``COMPREPLY``.
* zsh: ``zsh -f -i`` on a pseudo-terminal with ``compinit``: the keystrokes
  ``LINE<TAB>`` go through the real line editor and completion system;
  ``compadd`` is wrapped to also record each candidate in a file.
* fish: ``source completions/vutf.fish; complete -C LINE``.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = REPO_ROOT / "completions"
SHELL_TIMEOUT = 60.0

FAKE_VUTF = """#!/bin/sh
printf '%s\\n' "$*" >> "$VUTF_FAKE_CALLS"
printf 'alice\\nalan\\n'
"""


@dataclass(frozen=True)
class Case:
    line: str  # what was typed before <TAB>
    expected: frozenset[str]  # exactly the candidates offered
    calls_vutf: bool = False


USERS_COMMANDS = frozenset(
    {"create", "list", "show", "update", "set-password", "check-password", "activate",
     "deactivate", "verify", "delete", "restore", "export", "import", "add-role",
     "remove-role", "unlock"}
)  # fmt: skip

CASES = [
    pytest.param(
        Case(
            "vutf ",
            frozenset(
                {"doctor", "plan", "apply", "export-state", "batch"}
                | {"db", "users", "keys", "roles", "audit", "completion"}
            ),
        ),
        id="commands",
    ),
    pytest.param(Case("vutf users ", USERS_COMMANDS), id="users-subcommands"),
    # --search/--sort/--superuser are users list's own, --database-url/--debug global.
    pytest.param(
        Case("vutf users list --s", frozenset({"--search", "--sort", "--superuser"})),
        id="option-prefix",
    ),
    pytest.param(
        Case("vutf users list --d", frozenset({"--deleted", "--database-url", "--debug"})),
        id="global-option-after-subcommand",
    ),
    pytest.param(
        Case("vutf -o ", frozenset({"table", "wide", "json", "jsonl", "csv", "yaml"})),
        id="o-values",
    ),
    pytest.param(
        Case("vutf audit list -o j", frozenset({"json", "jsonl"})), id="o-values-after-command"
    ),
    pytest.param(
        Case(
            "vutf audit stats --by ",
            frozenset({"action", "actor", "resource-type", "status", "day"}),
        ),
        id="by-values",
    ),
    pytest.param(
        Case("vutf audit export --status ", frozenset({"success", "failure", "error"})),
        id="status-values",
    ),
    pytest.param(
        Case("vutf users show ", frozenset({"alice", "alan"}), calls_vutf=True), id="username"
    ),
    pytest.param(
        Case("vutf keys create --user a", frozenset({"alice", "alan"}), calls_vutf=True),
        id="user-option",
    ),
]


@dataclass(frozen=True)
class Shell:
    env: dict[str, str]
    calls: Path
    workdir: Path

    def assert_calls(self, case: Case) -> None:
        if case.calls_vutf:
            assert self.calls.exists(), f"{case.line!r}<TAB> did not ask vutf"
            kind = "users"
            prefix = "" if case.line.endswith(" ") else case.line.split()[-1]
            calls = self.calls.read_text().splitlines()
            # zsh asks again on a second <TAB>, for the common prefix it inserted.
            assert calls[0] == f"completion names {kind} {prefix}"
            assert all(call.startswith(f"completion names {kind} ") for call in calls)
        else:
            assert not self.calls.exists(), (
                f"{case.line!r}<TAB> started vutf: {self.calls.read_text()!r}"
            )


def require_shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (CI installs it: apt-get install -y zsh fish)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def shell(tmp_path: Path, isolated_environment: Path) -> Shell:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vutf"
    fake.write_text(FAKE_VUTF)
    fake.chmod(0o755)
    workdir = tmp_path / "work"
    workdir.mkdir()
    calls = tmp_path / "vutf-calls.txt"
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(isolated_environment),
        VUTF_FAKE_CALLS=str(calls),
        TERM="dumb",
    )
    return Shell(env=env, calls=calls, workdir=workdir)


def _run(argv: list[str], shell: Shell) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv,
        env=shell.env,
        cwd=shell.workdir,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result


# -- bash --------------------------------------------------------------------------
BASH_DRIVER = r"""
source "$1"; shift
spec=$(complete -p vutf) || { echo "nothing registered for vutf" >&2; exit 3; }
func=${spec#*-F }; func=${func%% *}
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
"$func" vutf "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(line: str, shell: Shell) -> set[str]:
    bash = require_shell("bash")
    # The words as readline splits the line: a trailing space starts an empty word.
    words = line.split() + ([""] if line.endswith(" ") else [])
    result = _run(
        [bash, "--norc", "--noprofile", "-c", BASH_DRIVER, "bash",
         str(COMPLETIONS / "vutf.bash"), *words],
        shell,
    )  # fmt: skip
    return {word for word in result.stdout.splitlines() if word}


@pytest.mark.parametrize("case", CASES)
def test_bash(case: Case, shell: Shell) -> None:
    assert bash_complete(case.line, shell) == case.expected
    shell.assert_calls(case)


def test_bash_completes_an_option_value_given_with_equals(shell: Shell) -> None:
    # readline splits "--output=js" into "--output", "=", "js".
    words = "vutf users list --output = js"
    assert bash_complete(words, shell) == {"json", "jsonl"}
    assert not shell.calls.exists()


# -- fish --------------------------------------------------------------------------
def fish_complete(line: str, shell: Shell) -> set[str]:
    fish = require_shell("fish")
    result = _run(
        [fish, "--no-config", "-c", "source $argv[1]; and complete -C $argv[2]",
         str(COMPLETIONS / "vutf.fish"), line],
        shell,
    )  # fmt: skip
    # fish prints "candidate<TAB>description".
    return {row.split("\t", 1)[0] for row in result.stdout.splitlines() if row}


@pytest.mark.parametrize("case", CASES)
def test_fish(case: Case, shell: Shell) -> None:
    assert fish_complete(case.line, shell) == case.expected
    shell.assert_calls(case)


# -- zsh ---------------------------------------------------------------------------
ZSH_SETUP = r"""
autoload -Uz compinit && compinit -u -D
source "$VUTF_TEST_SCRIPT"
# Record every candidate that reaches the completion list, then add it as usual.
compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
    builtin compadd "$@"; return $?
  fi
  local -a __hits
  builtin compadd -A __hits "$@"
  (( ${#__hits} )) && print -rl -- "${(@)__hits}" >> "$VUTF_TEST_CANDIDATES"
  builtin compadd "$@"
}
zstyle ':completion:*' list-prompt ''
PS1='> '
print -r -- VUTF-TEST-READY
"""


class Pty:
    """A child process on a 200-column pseudo-terminal, its output drained as we wait."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.output = b""
        try:
            self.process = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + SHELL_TIMEOUT
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; terminal showed: {self.output!r}")
            self.drain(0.05)

    def wait_until(self, condition: Callable[[], bool], seconds: float) -> bool:
        """Whether ``condition`` came true within ``seconds`` (reading the terminal meanwhile)."""
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.drain(0.05)
        return True

    def drain(self, seconds: float) -> None:
        ready, _, _ = select.select([self.master], [], [], seconds)
        if ready:
            try:
                self.output += os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                if self.process.poll() is not None:
                    pytest.fail(f"the shell exited: {self.output!r}")

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=SHELL_TIMEOUT)
        os.close(self.master)


def zsh_complete(
    line: str, shell: Shell, *, listing: bytes | None = None
) -> tuple[set[str], bytes]:
    """The candidates zsh offers for LINE<TAB>, and what the terminal showed.

    With ``listing``, the second <TAB> waits until the terminal shows it (a
    loaded machine may take longer than any fixed pause to draw the list).
    """
    zsh = require_shell("zsh")
    setup = shell.workdir / "setup.zsh"
    setup.write_text(ZSH_SETUP, encoding="utf-8")
    candidates = shell.workdir / "candidates.txt"
    env = dict(
        shell.env,
        TERM="xterm",
        VUTF_TEST_SCRIPT=str(COMPLETIONS / "_vutf"),
        VUTF_TEST_CANDIDATES=str(candidates),
    )
    terminal = Pty([zsh, "-f", "-i"], env, shell.workdir)
    try:
        terminal.send(f"source {setup}\n".encode())
        terminal.wait_for(lambda: b"VUTF-TEST-READY\r\n" in terminal.output, "the setup")
        terminal.send(line.encode() + b"\t")
        terminal.wait_for(
            lambda: candidates.exists() and candidates.read_text().strip() != "",
            f"candidates for {line!r}<TAB>",
        )
        # A second <TAB> lists them (with their descriptions) when <TAB> inserted none.
        terminal.send(b"\t")
        if listing is not None:
            # A <TAB> typed while zsh still finishes the first one may be
            # taken as part of it: press it again until the list shows.
            for _ in range(3):
                if terminal.wait_until(lambda: listing in terminal.output, 10.0):
                    break
                terminal.send(b"\t")
        else:
            terminal.drain(1.0)
        terminal.drain(0.2)
    finally:
        terminal.close()
    assert b"command not found" not in terminal.output
    return set(candidates.read_text(encoding="utf-8").split()), terminal.output


def _common_prefix(words: frozenset[str]) -> str:
    first, last = min(words), max(words)
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return first[:length]


@pytest.mark.parametrize("case", CASES)
def test_zsh(case: Case, shell: Shell) -> None:
    offered, _ = zsh_complete(case.line, shell)
    # zsh may also record the common prefix it inserted ("al" for alice/alan).
    assert case.expected <= offered <= case.expected | {_common_prefix(case.expected)}
    shell.assert_calls(case)


def test_zsh_descriptions_keep_their_apostrophes(shell: Shell) -> None:
    # "Check a user's password ..." is the help of users check-password.
    _, screen = zsh_complete("vutf users ", shell, listing=b"Check a user's password")
    assert b"Check a user's password" in screen, screen


def test_zsh_script_loads_cleanly_and_registers_vutf(shell: Shell) -> None:
    zsh = require_shell("zsh")
    result = _run(
        [zsh, "-f", "-c",
         'autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- "$_comps[vutf]"',
         "zsh", str(COMPLETIONS / "_vutf")],
        shell,
    )  # fmt: skip
    assert result.stdout == "_vutf\n"
