"""A reader that stops early (``vutf users list -o jsonl | head -n1``) is not a failure.

Every write of the output layer to a pipe whose reader has gone raises
``PipeClosed`` (never ``BrokenPipeError``), whatever the format and whichever
way the data goes out; the entry point turns it into exit 0 with nothing on
stderr.  The pipes here are real: an ``os.pipe`` whose read end is closed.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from vutf_cli.errors import PipeClosed
from vutf_cli.output import OUTPUT_FORMATS, Column, Terminal

REPO_ROOT = Path(__file__).resolve().parents[2]

ROWS = [{"id": n, "username": f"user{n}", "email": f"user{n}@example.com"} for n in range(50)]
COLUMNS = [Column("id"), Column("username"), Column("email")]


class _TerminalPipe(io.TextIOWrapper):
    """A pipe that claims to be a terminal (what Rich is told it draws on)."""

    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def widowed_pipe(*, tty: bool = False) -> Iterator[TextIO]:
    """A text stream on the write end of a pipe whose read end is already closed."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    wrapper = _TerminalPipe if tty else io.TextIOWrapper
    stream = wrapper(os.fdopen(write_fd, "wb"), encoding="utf-8")
    try:
        yield stream
    finally:
        # Closing flushes what the failed writes left buffered: EPIPE again.
        with contextlib.suppress(BrokenPipeError):
            stream.close()


def _closed_by(error: PipeClosed) -> bool:
    return isinstance(error.__cause__, BrokenPipeError)


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
def test_rows_to_a_closed_pipe_raise_pipe_closed(output_format: str) -> None:
    with widowed_pipe() as stream:
        terminal = Terminal(output_format=output_format, stdout=stream, stderr=io.StringIO())
        with pytest.raises(PipeClosed) as raised:
            terminal.emit_rows(iter(ROWS), columns=COLUMNS)
        assert _closed_by(raised.value)


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
def test_one_object_to_a_closed_pipe_raises_pipe_closed(output_format: str) -> None:
    with widowed_pipe() as stream:
        terminal = Terminal(output_format=output_format, stdout=stream, stderr=io.StringIO())
        with pytest.raises(PipeClosed):
            terminal.emit_object(ROWS[0], title="user")


def test_a_table_on_a_closed_terminal_pipe_raises_pipe_closed_not_rich_exit() -> None:
    # Rich answers a broken pipe itself with exit 1; the table renderer must
    # never let Rich write to stdout, on a terminal too.
    with widowed_pipe(tty=True) as stream:
        terminal = Terminal(output_format="table", stdout=stream, stderr=io.StringIO())
        assert terminal.stdout_is_tty
        with pytest.raises(PipeClosed):
            terminal.emit_rows(iter(ROWS), columns=COLUMNS)


def _write_parts(terminal: Terminal) -> None:
    with terminal.json_lines_writer(columns=COLUMNS) as emit:
        for _ in range(20_000):  # more than the pipe's and the buffer's capacity
            emit(b'{"id":1,"username":"u","email":"u@example.com"}\n')
            emit(ROWS[0])


def test_json_lines_made_elsewhere_to_a_closed_pipe_raise_pipe_closed() -> None:
    with widowed_pipe() as stream:
        terminal = Terminal(output_format="jsonl", stdout=stream, stderr=io.StringIO())
        with pytest.raises(PipeClosed):
            _write_parts(terminal)


def test_text_a_command_writes_itself_to_a_closed_pipe_raises_pipe_closed() -> None:
    with widowed_pipe() as stream:
        terminal = Terminal(output_format="table", stdout=stream, stderr=io.StringIO())
        terminal.stdout.write("anchor\n")  # buffered: nothing reached the pipe yet
        with pytest.raises(PipeClosed):
            terminal.stdout.flush()


def _vutf(*args: str, stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    # The autouse fixture of tests/conftest.py gives this test its own data
    # directory: the embedded SQLite database is created on first use.
    return subprocess.run(
        [sys.executable, "-m", "vutf_cli", *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "VUTF_ARGON2_PROFILE": "test"},
        check=False,
        timeout=60,
    )


def test_vutf_writing_into_a_closed_pipe_exits_0_quietly() -> None:
    created = _vutf("users", "create", "alice", "--email", "a@example.com", "--generate-password")
    assert created.returncode == 0, created.stderr.decode()
    # A Rich table, rows written by vutf, rows rendered by the database.
    for command in (("users", "list"), ("users", "list", "-o", "jsonl"), ("audit", "export")):
        read_fd, write_fd = os.pipe()
        os.close(read_fd)
        try:
            result = _vutf(*command, stdout=write_fd)
        finally:
            os.close(write_fd)
        assert (result.returncode, result.stderr.decode()) == (0, ""), command
