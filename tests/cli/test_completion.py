"""Shell completion: the committed scripts are current, and each works in its real shell.

What each shell test exercises, with the installed ``vutf`` first on PATH:

* bash: source ``completions/vutf.bash``, find the function that ``complete -p
  vutf`` registered, call it with ``COMP_WORDS``/``COMP_CWORD`` set as
  readline sets them, and read ``COMPREPLY``.
* zsh: ``zsh -f -i`` on a pseudo-terminal runs ``compinit``, sources
  ``completions/_vutf`` and gets the keystrokes ``vutf d<TAB>``: the real
  line editor, completion system, ``_vutf_completion`` and the ``_arguments``
  call that vutf prints.  ``compadd`` is wrapped to also record each
  candidate in a file, and a widget records the edited line afterwards (so a
  unique candidate is seen inserted).  A separate test sources the script in
  a plain ``zsh -f`` to show it loads without a word on stderr.
* fish: ``source completions/vutf.fish; complete -C "vutf d"`` — fish's own
  completion engine, including the script's ``--condition``.

Every case also checks that completing never touched the database: the
SQLite file named by ``VUTF_DATABASE_URL`` and the default data directory
must not exist afterwards.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from vutf_cli.cli import completion
from vutf_cli.cli.completion import REGENERATE_COMMAND, SCRIPT_FILES

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS_DIR = REPO_ROOT / "completions"
USERS_MODULE = REPO_ROOT / "vutf_cli" / "cli" / "users.py"
SHELL_TIMEOUT = 60.0

needs_users_group = pytest.mark.skipif(
    not USERS_MODULE.exists(),
    reason="vutf_cli/cli/users.py does not exist yet, so `vutf users` is not registered",
)


# -- the committed scripts ---------------------------------------------------
def test_committed_scripts_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = completion.write_completion_scripts(tmp_path / "fresh")
    assert sorted(path.name for path in written) == sorted(SCRIPT_FILES.values())
    for fresh in written:
        committed = COMPLETIONS_DIR / fresh.name
        assert committed.is_file(), (
            f"{committed.relative_to(REPO_ROOT)} is missing; regenerate with: {REGENERATE_COMMAND}"
        )
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"{committed.relative_to(REPO_ROOT)} is stale (Typer's template or the program name "
            f"changed); regenerate with: {REGENERATE_COMMAND}"
        )


def test_check_reports_a_stale_script_and_write_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert completion.main(["--write", str(tmp_path)]) == 0
    assert completion.main(["--check", str(tmp_path)]) == 0
    capsys.readouterr()

    (tmp_path / "_vutf").write_text("#compdef vutf\n# edited by hand\n", encoding="utf-8")
    (tmp_path / "vutf.fish").unlink()
    assert completion.main(["--check", str(tmp_path)]) == 1
    stderr = capsys.readouterr().err
    assert f"stale: {tmp_path / '_vutf'}" in stderr
    assert f"stale: {tmp_path / 'vutf.fish'}" in stderr
    assert "vutf.bash" not in stderr
    assert REGENERATE_COMMAND in stderr

    assert completion.main(["--write", str(tmp_path)]) == 0
    assert completion.main(["--check", str(tmp_path)]) == 0


def test_unknown_shell_is_refused() -> None:
    with pytest.raises(ValueError, match="powershell"):
        completion.completion_script("powershell")


# -- helpers for the real shells ---------------------------------------------
def require_shell(name: str) -> str:
    """The shell's path; skip when it is absent, except in CI where that is a failure."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (CI installs it: apt-get install -y zsh fish)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def installed_vutf() -> Path:
    """The installed console script: the one beside this interpreter, else the one on PATH."""
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


@dataclass(frozen=True)
class ShellEnv:
    env: dict[str, str]
    database_file: Path
    data_dir: Path
    workdir: Path

    def assert_database_untouched(self) -> None:
        assert not self.database_file.exists(), "completion created the database file"
        assert not self.data_dir.exists(), "completion created the data directory"


@pytest.fixture
def shell_env(tmp_path: Path, isolated_environment: Path) -> ShellEnv:
    """The test's isolated environment, with the installed vutf first on PATH."""
    vutf_dir = installed_vutf().parent
    database_file = tmp_path / "must-not-exist.db"
    env = dict(os.environ)
    env.update(
        PATH=f"{vutf_dir}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(isolated_environment),
        VUTF_DATABASE_URL=f"sqlite:///{database_file}",
        TERM="dumb",
    )
    workdir = tmp_path / "shell"
    workdir.mkdir()
    return ShellEnv(
        env=env,
        database_file=database_file,
        data_dir=Path(env["VUTF_DATA_DIR"]),
        workdir=workdir,
    )


@dataclass(frozen=True)
class Case:
    line: str  # what was typed before <TAB>
    expected: frozenset[str]  # candidates that must be offered
    inserted: str | None = None  # the line after <TAB>, when the candidate is unique

    @property
    def incomplete(self) -> str:
        return "" if self.line.endswith(" ") else self.line.split()[-1]


CASES = [
    pytest.param(Case("vutf d", frozenset({"db"}), inserted="vutf db "), id="d-TAB"),
    pytest.param(Case("vutf db ", frozenset({"upgrade", "current"})), id="db-TAB"),
    pytest.param(
        Case("vutf us", frozenset({"users"}), inserted="vutf users "),
        id="us-TAB",
        marks=needs_users_group,
    ),
    pytest.param(
        Case("vutf users ", frozenset({"create", "list"})),
        id="users-TAB",
        marks=needs_users_group,
    ),
]


def assert_offered(case: Case, offered: list[str]) -> None:
    missing = case.expected - set(offered)
    assert not missing, f"{case.line!r}<TAB> offered {offered}, missing {sorted(missing)}"
    unrelated = [word for word in offered if not word.startswith(case.incomplete)]
    assert not unrelated, f"{case.line!r}<TAB> offered words not starting with the prefix"


# -- bash --------------------------------------------------------------------
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


@pytest.mark.parametrize("case", CASES)
def test_bash_completes(case: Case, shell_env: ShellEnv) -> None:
    bash = require_shell("bash")
    # The words as readline splits the line: a trailing space starts an empty word.
    words = case.line.split() + ([""] if case.line.endswith(" ") else [])
    result = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", BASH_DRIVER, "bash",
         str(COMPLETIONS_DIR / "vutf.bash"), *words],
        env=shell_env.env,
        cwd=shell_env.workdir,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_offered(case, [line for line in result.stdout.splitlines() if line])
    shell_env.assert_database_untouched()


# -- fish --------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_fish_completes(case: Case, shell_env: ShellEnv) -> None:
    fish = require_shell("fish")
    result = subprocess.run(
        [fish, "--no-config", "-c", "source $argv[1]; and complete -C $argv[2]",
         str(COMPLETIONS_DIR / "vutf.fish"), case.line],
        env=shell_env.env,
        cwd=shell_env.workdir,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # fish prints "candidate<TAB>description".
    offered = [line.split("\t", 1)[0] for line in result.stdout.splitlines() if line]
    assert_offered(case, offered)
    shell_env.assert_database_untouched()


# -- zsh ---------------------------------------------------------------------
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
# Ctrl-X Ctrl-B writes the edited line, so the test sees what <TAB> inserted.
_vutf_test_dump_buffer() { print -r -- "$BUFFER" > "$VUTF_TEST_BUFFER" }
zle -N _vutf_test_dump_buffer
bindkey '^X^B' _vutf_test_dump_buffer
PS1='> '
print -r -- VUTF-TEST-READY
"""


class Pty:
    """A child process on a pseudo-terminal, its output drained as we wait."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        self.output = b""
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            os.close(slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + SHELL_TIMEOUT
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; terminal showed: {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    if self.process.poll() is not None and not condition():
                        pytest.fail(f"the shell exited before {what}: {self.output!r}")

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=SHELL_TIMEOUT)
        os.close(self.master)


def _non_empty(path: Path) -> Callable[[], bool]:
    return lambda: path.exists() and path.read_text(encoding="utf-8").strip() != ""


@pytest.mark.parametrize("case", CASES)
def test_zsh_completes_at_the_prompt(case: Case, shell_env: ShellEnv) -> None:
    zsh = require_shell("zsh")
    setup = shell_env.workdir / "setup.zsh"
    setup.write_text(ZSH_SETUP, encoding="utf-8")
    candidates = shell_env.workdir / "candidates.txt"
    buffer = shell_env.workdir / "buffer.txt"
    env = dict(
        shell_env.env,
        VUTF_TEST_SCRIPT=str(COMPLETIONS_DIR / "_vutf"),
        VUTF_TEST_CANDIDATES=str(candidates),
        VUTF_TEST_BUFFER=str(buffer),
    )
    terminal = Pty([zsh, "-f", "-i"], env, shell_env.workdir)
    try:
        terminal.send(f"source {setup}\n".encode())
        terminal.wait_for(lambda: b"VUTF-TEST-READY\r\n" in terminal.output, "the setup")
        terminal.send(case.line.encode() + b"\t")
        terminal.wait_for(_non_empty(candidates), f"candidates for {case.line!r}<TAB>")
        terminal.send(b"\x18\x02")  # Ctrl-X Ctrl-B, handled after the completion
        terminal.wait_for(_non_empty(buffer), "the edited line")
    finally:
        terminal.close()
    assert_offered(case, candidates.read_text(encoding="utf-8").split())
    edited = buffer.read_text(encoding="utf-8").removesuffix("\n")
    assert edited == (case.inserted or case.line)
    assert b"command not found" not in terminal.output
    shell_env.assert_database_untouched()


def test_zsh_script_loads_cleanly(shell_env: ShellEnv) -> None:
    zsh = require_shell("zsh")
    result = subprocess.run(
        [zsh, "-f", "-c",
         'autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- "$_comps[vutf]"',
         "zsh", str(COMPLETIONS_DIR / "_vutf")],
        env=shell_env.env,
        cwd=shell_env.workdir,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == "_vutf_completion\n"


# -- what a user runs ----------------------------------------------------------
@pytest.mark.parametrize("shell", sorted(SCRIPT_FILES))
def test_show_completion_in_each_shell_prints_the_committed_script(
    shell: str, shell_env: ShellEnv
) -> None:
    """`vutf --show-completion` run from the shell (detected by Typer) prints our file."""
    binary = require_shell(shell)
    # "; true" keeps the shell as vutf's parent (a lone command would be exec'd).
    result = subprocess.run(
        [binary, "-c", "vutf --show-completion; true"],
        env=shell_env.env,
        cwd=shell_env.workdir,
        capture_output=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    committed = COMPLETIONS_DIR / SCRIPT_FILES[shell]
    assert result.stdout == committed.read_bytes()
