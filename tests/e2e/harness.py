"""How the end-to-end tests meet the installed `vutf`: as a script, at a terminal, in tmux.

Each way has one owner here, so its timeout, its environment and its cleanup
are decided once for every test that uses it:

* :func:`run_script`: a bash script under ``set -euo pipefail`` (a CI job);
* :class:`Terminal`: a command on a pseudo-terminal, answering its prompts (a person);
* :class:`Tmux`: a bash window in a tmux server of its own, read off the screen
  (table widths, the pager);
* :func:`run_benchmarks`: the benchmark runner (``python -m tests.benchmarks``)
  at a tiny size, stopped so that it drops its databases on timeout.

A helper module, not a test module: pytest collects nothing from it.
"""

from __future__ import annotations

import codecs
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest

# The console script pip installed beside this interpreter: what a user runs.
VUTF: Final = Path(sys.executable).with_name("vutf")
# A script of many vutf commands on a busy two-core machine: generous, but bounded.
WAIT: Final = 120.0
# How long a prompt may take to show, and a terminal session to end.
TERMINAL_TIMEOUT: Final = 60.0
# One tmux command, and one wait for the screen to show something.
TMUX_TIMEOUT: Final = 30.0
# A whole tiny run of the benchmark runner.
BENCHMARK_TIMEOUT: Final = 600.0
REPO_ROOT: Final = Path(__file__).resolve().parents[2]


def installed_env(database_url: str | None) -> dict[str, str]:
    """This test's environment with the installed vutf first on PATH, as a script finds it.

    ``database_url`` becomes VUTF_DATABASE_URL; ``None`` leaves it unset (a CI
    job whose secret is missing), never inherited.
    """
    env = {**os.environ, "PATH": f"{VUTF.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("VUTF_DATABASE_URL", None)
    if database_url is not None:
        env["VUTF_DATABASE_URL"] = database_url
    return env


def run_script(
    script: str, database_url: str | None, cwd: Path, *, timeout: float = WAIT
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with bash under ``set -euo pipefail`` in ``cwd``, its stdin closed.

    A failing exit does not raise: the test asserts on it, with the script's stderr.
    """
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        env=installed_env(database_url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def migrated_sqlite_env(tmp_path: Path, vutf: Sequence[str], *, columns: int) -> dict[str, str]:
    """A SQLite database of the test's own in ``tmp_path``, migrated by ``vutf db upgrade``.

    ``vutf`` is the command that starts the installed vutf; ``columns`` the width
    its tables are drawn for.
    """
    env = {
        **os.environ,
        "VUTF_DATABASE_URL": f"sqlite:///{tmp_path / 'vutf.db'}",
        "VUTF_ARGON2_PROFILE": "test",
        "COLUMNS": str(columns),
    }
    subprocess.run(
        [*vutf, "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
        timeout=TERMINAL_TIMEOUT,
    )
    return env


class Terminal:
    """``command`` with stdin, stdout and stderr on one pseudo-terminal, as a person runs it.

    ``seen`` is everything the terminal showed so far, ``\\r\\n`` read as ``\\n``.
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        *,
        timeout: float = TERMINAL_TIMEOUT,
    ) -> None:
        self.timeout = timeout
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            list(command),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        # A character split between two reads is decoded whole, not as two U+FFFD.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.seen = ""
        self.matched = 0  # where the last expected text ended

    def _read(self, deadline: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.seen += self._decoder.decode(data).replace("\r\n", "\n")
        return True

    def expect(self, pattern: str) -> None:
        """Wait until ``pattern`` (a regex) shows after what was already matched."""
        deadline = time.monotonic() + self.timeout
        while (found := re.compile(pattern, re.M).search(self.seen, self.matched)) is None:
            if not self._read(deadline):
                raise AssertionError(f"{pattern!r} never showed; the terminal showed:\n{self.seen}")
        self.matched = found.end()
        if pattern.endswith("$"):
            # A prompt: typing before it has turned echo off would show the secret.
            time.sleep(0.2)

    def type(self, text: str) -> None:
        """Type ``text`` and Enter."""
        os.write(self.master, (text + "\r").encode())

    def wait(self) -> int:
        """Read to the end of the output, then return the exit code."""
        deadline = time.monotonic() + self.timeout
        while self._read(deadline):
            pass
        code = self.process.wait(timeout=self.timeout)
        os.close(self.master)
        return code


class Tmux:
    """One tmux server of our own (its socket in ``directory``) with one bash window.

    The caller calls :meth:`close` (also when the test fails): the server outlives
    the test otherwise.
    """

    def __init__(self, directory: Path, width: int, env: dict[str, str]) -> None:
        self.socket = str(directory / f"tmux-{uuid.uuid4().hex[:8]}")
        self._tmux(
            "new-session", "-d", "-x", str(width), "-y", "40", "bash --norc --noprofile", env=env
        )
        self.run("PS1='$ '; clear")
        self.wait_for(lambda: self.screen().strip() == "$", "a clean prompt")

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=TMUX_TIMEOUT,
        )
        return done.stdout

    def run(self, command: str) -> None:
        """Type ``command`` and Enter at the prompt."""
        self._tmux("send-keys", "-l", command)
        self._tmux("send-keys", "Enter")

    def keys(self, *keys: str) -> None:
        """Press ``keys`` (tmux key names, e.g. ``q``)."""
        self._tmux("send-keys", *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen().splitlines()]

    def wait_for(
        self, condition: Callable[[], bool], what: str, seconds: float = TMUX_TIMEOUT
    ) -> None:
        """Poll the screen until ``condition`` holds; fail with the screen shown."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")

    def clear(self) -> None:
        """An empty screen with its prompt: typing before it shows would echo twice."""
        self.run("clear")
        self.wait_for(lambda: [line for line in self.lines() if line.strip()] == ["$"], "clear")

    def run_to_end(self, command: str) -> list[str]:
        """Run ``command`` to its end (exit 0) and return what it printed on the screen."""
        self.clear()
        self.run(f"{command}; echo rc=$?")
        self.wait_for(lambda: any(line.startswith("rc=") for line in self.lines()), command)
        lines = self.lines()
        typed = f"$ {command}; echo rc=$?"
        start = lines.index(typed) + 1 if typed in lines else 0  # scrolled off: all of it
        end = next(i for i, line in enumerate(lines) if line.startswith("rc="))
        assert lines[end] == "rc=0", lines
        return lines[start:end]

    def close(self) -> None:
        """End the tmux server; one already gone is no error (the test's own failure shows)."""
        subprocess.run(
            ["tmux", "-S", self.socket, "kill-server"], check=False, timeout=TMUX_TIMEOUT
        )


def run_benchmarks(
    backends: Sequence[str], arguments: Sequence[str], json_path: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The benchmark runner on ``backends``, one run per command and no warm-up.

    ``python -m tests.benchmarks --backend ... --repeat 1 --warmup 0
    ARGUMENTS --json JSON_PATH``: its output and its JSON file.  The runner
    gets no ``VUTF_*`` variable but the server to use; on timeout
    it is stopped with SIGTERM, on which it drops its databases and files.
    A failed run fails the test with its output.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("VUTF_")}
    if "VUTF_TEST_POSTGRES_URL" in os.environ:
        env["VUTF_TEST_POSTGRES_URL"] = os.environ["VUTF_TEST_POSTGRES_URL"]
    backend = "both" if len(backends) == 2 else backends[0]
    args = [sys.executable, "-m", "tests.benchmarks", "--backend", backend, "--repeat", "1"]
    args += ["--warmup", "0", *arguments, "--json", str(json_path)]
    process = subprocess.Popen(
        args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=BENCHMARK_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(
            f"the runner took over {BENCHMARK_TIMEOUT:.0f} s\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )
    assert process.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    document = json.loads(json_path.read_text(encoding="utf-8"))
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr), document
