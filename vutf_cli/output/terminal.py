"""``Terminal``: the one object that writes to stdout and stderr.

Commands hand it results; it decides how they look (docs/architecture.md §5):

* stdout is data only, drawn by the renderer of the chosen output format
  (:mod:`vutf_cli.output_formats` lists them: ``table`` for people, ``json``,
  ``jsonl`` and ``csv`` for programs);
* stderr gets everything else: notices, warnings, errors, progress bars.

Rich is imported lazily, inside the code that draws tables and progress
bars, so ``vutf users list --json`` never pays for importing it.  The
json/jsonl/csv renderers stream: rows are written as they arrive and the
whole result is never held in memory.  If the row source fails half-way, a
partial document has been written; the command then exits non-zero with the
error on stderr.  A closed stdout is :class:`~vutf_cli.errors.PipeClosed`
(see :mod:`vutf_cli.output.stdout`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from vutf_cli.errors import VutfError
from vutf_cli.output.columns import Column, field_names, field_value, records
from vutf_cli.output.jsonl_format import json_line
from vutf_cli.output.renderer import renderer_for
from vutf_cli.output.sanitize import inert
from vutf_cli.output.serialize import dumps, terminal_safe_json
from vutf_cli.output.stdout import Stdout, colors_allowed, isatty
from vutf_cli.output_formats import OUTPUT_FORMATS

__all__ = ["OUTPUT_FORMATS", "Column", "Terminal"]


def _inert_lines(message: str) -> str:
    # Messages may be multi-line on purpose; neutralise each line, keep the breaks.
    return "\n".join(inert(line) for line in message.split("\n"))


def _noop_advance(_steps: int = 1) -> None:
    return None


class Terminal:
    """Owns stdout and stderr and renders results in one output format.

    ``stdout``/``stderr`` default to whatever ``sys.stdout``/``sys.stderr``
    are *when written to*, so test runners that swap them (Click's CliRunner)
    see the output.
    """

    def __init__(
        self,
        *,
        output_format: str = "table",
        no_color: bool = False,
        quiet: bool = False,
        stdout: TextIO | Stdout | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self._renderer = renderer_for(output_format)
        self.output_format = output_format
        self.quiet = quiet
        # Another Terminal's stdout: bound to the stream it writes to now.
        stream = stdout.stream if isinstance(stdout, Stdout) else stdout
        self._stdout = Stdout(stream, no_color=no_color)
        self._stderr = stderr

    # -- streams ---------------------------------------------------------------

    @property
    def stdout(self) -> Stdout:
        """stdout for data: commands that write text of their own write it here."""
        return self._stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr if self._stderr is not None else sys.stderr

    @property
    def no_color(self) -> bool:
        return self._stdout.no_color

    @property
    def stdout_is_tty(self) -> bool:
        return self._stdout.is_tty

    @property
    def stderr_is_tty(self) -> bool:
        return isatty(self.stderr)

    @property
    def is_machine_output(self) -> bool:
        """True for json/jsonl: errors on stderr are JSON as well."""
        return self._renderer.errors_as_json

    @property
    def stdout_color(self) -> bool:
        """Whether tables on stdout may use ANSI styling at all."""
        return self._stdout.color

    @property
    def stderr_color(self) -> bool:
        return colors_allowed(self.no_color) and self.stderr_is_tty

    # -- data on stdout --------------------------------------------------------

    def emit_object(
        self, obj: Any, *, fields: Sequence[str] | None = None, title: str | None = None
    ) -> None:
        """Write one result object (a dataclass view or a mapping).

        ``fields`` selects and orders the fields (default: all of them);
        ``title`` is shown above the table only.
        """
        names = list(fields) if fields is not None else field_names(obj)
        record = {name: field_value(obj, name) for name in names}
        self._renderer.write_object(self._stdout, record, title=title)
        self._stdout.flush()

    def emit_rows(
        self,
        rows: Iterable[Any],
        *,
        columns: Sequence[Column],
        empty_notice: str | None = None,
    ) -> int:
        """Write a list of results; return how many rows there were.

        json/jsonl/csv stream every column's full value; the table shows the
        ``in_table`` columns through their formatters.  With no rows the
        output is ``[]`` (json), nothing (jsonl, table) or the header (csv),
        and ``empty_notice`` goes to stderr.
        """
        count = self._renderer.write_rows(self._stdout, rows, columns)
        self._stdout.flush()
        if count == 0 and empty_notice:
            self.notice(empty_notice)
        return count

    @contextmanager
    def json_lines_writer(self, *, columns: Sequence[Column]) -> Iterator[Callable[[Any], None]]:
        """Yield ``emit(part)`` writing JSON lines made partly elsewhere (``-o jsonl``).

        A ``bytes`` part is JSON text rendered by someone else (UTF-8, whole
        lines, each with its newline), written as it is bar the escaping
        :func:`~vutf_cli.output.serialize.dumps` adds; any other part is a row
        (an object or a mapping), written as ``-o jsonl`` writes a row.
        Everything goes straight to the binary stream under stdout when there
        is one.
        """
        keys = [column.key for column in columns]
        out = self._stdout
        out.flush()

        def emit(part: Any) -> None:
            if type(part) is bytes:
                out.write_bytes(terminal_safe_json(part))
            else:
                out.write_bytes(json_line(next(records((part,), keys))).encode("utf-8"))

        yield emit
        out.flush()

    # -- messages on stderr ----------------------------------------------------

    def _write_err(self, text: str) -> None:
        err = self.stderr
        err.write(text)
        err.flush()

    def notice(self, msg: str) -> None:
        """Informational message on stderr; suppressed by --quiet."""
        if not self.quiet:
            self._write_err(_inert_lines(msg) + "\n")

    def success(self, msg: str) -> None:
        """Confirmation of a completed action on stderr; suppressed by --quiet."""
        self.notice(msg)

    def warning(self, msg: str) -> None:
        """Warning on stderr, shown even with --quiet."""
        self._write_err("warning: " + _inert_lines(msg) + "\n")

    def error(self, err: VutfError) -> None:
        """Report ``err`` on stderr: one JSON line for json/jsonl, else text."""
        if self.is_machine_output:
            body: dict[str, Any] = {
                "code": err.code,
                "message": err.message,
                "exit_code": int(err.exit_code),
            }
            if err.hint:
                body["hint"] = err.hint
            body.update(err.details())
            self._write_err(dumps({"error": body}) + "\n")
            return
        text = f"error: {inert(err.message)}\n"
        if err.hint:
            text += f"hint: {inert(err.hint)}\n"
        self._write_err(text)

    # -- progress on stderr ----------------------------------------------------

    @contextmanager
    def progress(self, total: int | None, description: str) -> Iterator[Callable[[int], None]]:
        """Yield ``advance(steps)``; draws a bar on stderr only on a terminal.

        Without a terminal (or with --quiet) ``advance`` does nothing, so
        callers never need to check.
        """
        if self.quiet or not self.stderr_is_tty:
            yield _noop_advance
            return

        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        color = self.stderr_color
        console = Console(
            file=self.stderr,
            force_terminal=True,
            color_system="auto" if color else None,
            no_color=not color,
            markup=False,
            emoji=False,
            highlight=False,
        )
        # markup=False: the default description column parses markup, and the
        # description may contain user data.
        columns = (
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(inert(description), total=total)

            def advance(steps: int = 1) -> None:
                bar.advance(task, steps)

            yield advance
