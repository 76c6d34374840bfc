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

import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from vutf_cli.errors import InvalidInput, VutfError
from vutf_cli.output.columns import Column, field_names, field_value, records
from vutf_cli.output.jsonl_format import json_line
from vutf_cli.output.renderer import renderer_for
from vutf_cli.output.sanitize import inert
from vutf_cli.output.serialize import dumps, terminal_safe_json
from vutf_cli.output.stdout import Stdout, colors_allowed, isatty
from vutf_cli.output_formats import OUTPUT_FORMATS

if TYPE_CHECKING:
    from vutf_cli.output.pager import Pager

__all__ = ["OUTPUT_FORMATS", "Column", "Terminal", "select_fields"]


def _inert_lines(message: str) -> str:
    # Messages may be multi-line on purpose; neutralise each line, keep the breaks.
    return "\n".join(inert(line) for line in message.split("\n"))


def _noop_advance(_steps: int = 1) -> None:
    return None


def select_fields(available: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """``wanted`` (``--fields``) checked against ``available``: an unknown one is exit 2."""
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise InvalidInput(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
            hint="valid fields: " + ", ".join(available),
        )
    return list(dict.fromkeys(wanted))


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
        # What a list or show command asked for (--fields, --no-headers,
        # paging); see :meth:`view`.
        self._fields: list[str] | None = None
        self._headers = True
        self._page = False
        self._pager: Pager | None = None

    # -- streams ---------------------------------------------------------------

    @property
    def stdout(self) -> Stdout:
        """stdout for data: commands that write text of their own write it here."""
        if self._pager is not None:
            return self._data_out()
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
    def is_table(self) -> bool:
        """True for the formats people read (table, wide): mutations print a summary line."""
        return self._renderer.for_people

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

    # -- what a list or show command asked for -------------------------------

    def view(self, *, fields: Sequence[str] | None, headers: bool, page: bool) -> None:
        """Apply ``--fields``, ``--no-headers`` and paging to what is written next.

        ``page``: a table on a terminal goes through the pager
        (:mod:`vutf_cli.output.pager`); never a pipe or a machine format.
        """
        self._fields = list(fields) if fields is not None else None
        self._headers = headers
        self._page = page

    def _data_out(self) -> Stdout:
        """stdout, or the pager's input when this output is to be paged."""
        if self._pager is not None:
            return Stdout(self._pager.stdin, no_color=self.no_color, tty=True)
        if not (self._page and self.is_table and self._stdout.is_tty):
            return self._stdout
        from vutf_cli.output.pager import Pager, pager_command

        argv = pager_command()
        encoding = getattr(self._stdout.stream, "encoding", None) or "utf-8"
        self._pager = Pager.start(argv, encoding) if argv is not None else None
        self._page = self._pager is not None
        return self._data_out() if self._pager is not None else self._stdout

    def close(self) -> None:
        """Wait for the pager, if one shows the output (the command has ended)."""
        pager, self._pager = self._pager, None
        if pager is not None:
            pager.close()

    # -- data on stdout --------------------------------------------------------

    def emit_object(
        self, obj: Any, *, fields: Sequence[str] | None = None, title: str | None = None
    ) -> None:
        """Write one result object (a dataclass view or a mapping).

        ``fields`` selects and orders the fields (default: all of them);
        ``--fields`` (:meth:`view`) may name any field of ``obj``;
        ``title`` is shown above the table only.
        """
        names = list(fields) if fields is not None else field_names(obj)
        if self._fields is not None:
            available = list(dict.fromkeys([*names, *field_names(obj)]))
            names = select_fields(available, self._fields)
        record = {name: field_value(obj, name) for name in names}
        out = self._data_out()
        self._renderer.write_object(out, record, title=title, headers=self._headers)
        out.flush()

    def emit_change(
        self, obj: Any, *, fields: Sequence[str] | None = None, target: str | None = None
    ) -> None:
        """The result of a mutation, after its one-line summary (``updated user 'alice'``).

        The command writes the summary on stderr (:meth:`success` or
        :meth:`notice`).  In a table format that is all, plus, dimmed on
        stderr, the ``target`` database it changed (``database: PATH``):
        stdout stays empty, ``users show`` or ``-o json`` has the record.  In
        a machine format the record goes to stdout, as ``show`` writes it.
        """
        if not self.is_table:
            self.emit_object(obj, fields=fields)
        else:
            self._database_line(target)

    def emit_changed_rows(
        self, rows: Iterable[Any], *, columns: Sequence[Column], target: str | None = None
    ) -> None:
        """:meth:`emit_change` for a mutation of several records (``keys revoke A B``).

        A table format writes only ``database: TARGET`` after the summary
        line; a machine format writes the records as :meth:`emit_rows` does.
        """
        if not self.is_table:
            self.emit_rows(rows, columns=columns)
        else:
            self._database_line(target)

    def _database_line(self, target: str | None) -> None:
        if target is not None and not self.quiet:
            self._write_err(self._dim(f"database: {inert(target)}") + "\n")

    def _dim(self, text: str) -> str:
        if not self.stderr_color:
            return text
        return f"\x1b[2m{text}\x1b[0m"

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
        if self._fields is not None:
            by_key = {column.key: column for column in columns}
            chosen = select_fields(list(by_key), self._fields)
            columns = [
                dataclasses.replace(by_key[key].selected(), order=index)
                for index, key in enumerate(chosen)
            ]
        out = self._data_out()
        count = self._renderer.write_rows(out, rows, columns, headers=self._headers)
        out.flush()
        if count == 0 and empty_notice:
            self.notice(empty_notice)
        return count

    def emit_stream(
        self, rows: Iterable[Any], *, columns: Sequence[Column], sample: Sequence[Any] = ()
    ) -> int:
        """Write rows that arrive over time, each as soon as it comes (``audit follow``).

        The same renderers as :meth:`emit_rows` (a table fits the terminal
        the same way, measured on ``sample``); never paged.
        """
        return self._renderer.stream_rows(
            self._stdout, rows, columns, sample=sample, headers=self._headers
        )

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
        # A message after paged data waits until the operator leaves the
        # pager: it would be drawn over the pager's screen otherwise.
        self.close()
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
