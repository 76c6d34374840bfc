"""``Terminal``: the one object that writes to stdout and stderr.

Commands hand it results; it decides how they look (DESIGN.md section 5):

* stdout is data only, in the chosen format: ``table`` (Rich, for people),
  ``json`` (one indented object, or one array), ``jsonl`` (one object per
  line) or ``csv`` (header plus rows);
* stderr gets everything else: notices, warnings, errors, progress bars.

Rich is imported lazily, inside the methods that draw tables and progress
bars, so ``vutf users list --json`` never pays for importing it.  The
json/jsonl/csv paths stream: rows are written as they arrive and the whole
result is never held in memory (a table has to be collected to size its
columns).  If the row source fails half-way, a partial document has been
written; the command then exits non-zero with the error on stderr.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, TextIO

from vutf_cli.errors import InvalidInput, VutfError
from vutf_cli.output.sanitize import csv_safe, inert
from vutf_cli.output.serialize import dumps, json_array_item, terminal_safe_json, to_jsonable

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

__all__ = ["OUTPUT_FORMATS", "Column", "Terminal"]

OUTPUT_FORMATS: Final[tuple[str, ...]] = ("table", "json", "jsonl", "csv")

# Output formats whose consumers are programs: errors go to stderr as JSON too.
_MACHINE_FORMATS: Final = frozenset({"json", "jsonl"})

# Width for tables written to a pipe or file when COLUMNS is not set.  It is a
# floor, not a limit: a wider table gets the width it needs (see _print).
_PIPE_WIDTH: Final = 240
# "As wide as it likes" when measuring a table's natural width.
_UNBOUNDED: Final = 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """One field of a row: which attribute to read and how to show it.

    ``key`` is the dataclass field (schema column) name; it is also the JSON
    key and the CSV header, so machine output always carries every column.
    ``in_table=False`` hides the column from ``-o table`` only.  ``formatter``
    turns the raw value into table text (e.g. a relative time); it is never
    used for json/jsonl/csv, which carry the exact data.
    """

    key: str
    header: str | None = None
    in_table: bool = True
    formatter: Callable[[Any], str] | None = None

    @property
    def title(self) -> str:
        """The table header: ``header`` if given, else the key."""
        return self.header if self.header is not None else self.key


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        # No isatty, or a closed stream (e.g. at interpreter shutdown).
        return False


def _no_color_env() -> bool:
    # https://no-color.org/: set *and non-empty* disables colour.
    return os.environ.get("NO_COLOR", "") != ""


def _pipe_width() -> int:
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else _PIPE_WIDTH


def _field_names(obj: Any) -> list[str]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [f.name for f in dataclasses.fields(obj)]
    if isinstance(obj, Mapping):
        return [str(k) for k in obj]
    raise TypeError(f"cannot list the fields of {type(obj).__name__}; pass fields=")


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj[key]
    return getattr(obj, key)


def _records(rows: Iterable[Any], keys: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Each row as a dict of exactly ``keys``, in that order (values unconverted)."""
    for row in rows:
        if isinstance(row, Mapping):
            yield {key: row[key] for key in keys}
        else:
            yield {key: getattr(row, key) for key in keys}


def _display(value: Any) -> str:
    """Default table text for a value (people read this; machines get json/csv)."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Enum):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        utc = value if value.tzinfo is None else value.astimezone(UTC)
        # Seconds are precise enough to read; -o json has the microseconds.
        return utc.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _display(value.value)
    if isinstance(value, list | tuple):
        return ", ".join(_display(v) for v in value)
    if isinstance(value, set | frozenset):
        return ", ".join(sorted(_display(v) for v in value))
    if isinstance(value, Mapping) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return dumps(value)
    return str(value)


def _csv_cell(value: Any) -> Any:
    """A CSV cell: numbers stay numbers, every string goes through csv_safe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return _csv_cell(to_jsonable(value))
    if isinstance(value, int | float):
        # Written by csv.writer via str(); not passed to csv_safe, so -3 stays -3.
        return value
    if isinstance(value, str):
        return csv_safe(value)
    if isinstance(value, list | tuple | set | frozenset | Mapping) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        # Nested data in one cell: JSON is unambiguous and parseable.
        return csv_safe(dumps(value))
    # datetime, date, UUID...: their JSON form (ISO timestamps, UUID text).
    return _csv_cell(to_jsonable(value))


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
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise InvalidInput(
                f"unknown output format {output_format!r}",
                hint="use one of: " + ", ".join(OUTPUT_FORMATS),
            )
        self.output_format = output_format
        self.no_color = no_color
        self.quiet = quiet
        self._stdout = stdout
        self._stderr = stderr

    # -- streams ---------------------------------------------------------------

    @property
    def stdout(self) -> TextIO:
        return self._stdout if self._stdout is not None else sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr if self._stderr is not None else sys.stderr

    @property
    def stdout_is_tty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_is_tty(self) -> bool:
        return _isatty(self.stderr)

    @property
    def is_machine_output(self) -> bool:
        """True for json/jsonl: errors on stderr are JSON as well."""
        return self.output_format in _MACHINE_FORMATS

    def _colors_allowed(self) -> bool:
        return not self.no_color and not _no_color_env()

    @property
    def stdout_color(self) -> bool:
        """Whether tables on stdout may use ANSI styling at all."""
        return self._colors_allowed() and self.stdout_is_tty

    @property
    def stderr_color(self) -> bool:
        return self._colors_allowed() and self.stderr_is_tty

    # -- data on stdout --------------------------------------------------------

    def emit_object(
        self, obj: Any, *, fields: Sequence[str] | None = None, title: str | None = None
    ) -> None:
        """Write one result object (a dataclass view or a mapping).

        ``fields`` selects and orders the fields (default: all of them);
        ``title`` is shown above the table only.
        """
        names = list(fields) if fields is not None else _field_names(obj)
        record = {name: _get(obj, name) for name in names}
        fmt = self.output_format
        out = self.stdout
        if fmt == "json":
            out.write(dumps(record, indent=2) + "\n")
        elif fmt == "jsonl":
            out.write(dumps(record) + "\n")
        elif fmt == "csv":
            writer = self._csv_writer()
            writer.writerow(names)
            writer.writerow([_csv_cell(record[name]) for name in names])
        else:
            self._emit_key_value_table(record, title)
        out.flush()

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
        keys = [column.key for column in columns]
        fmt = self.output_format
        if fmt == "json":
            count = self._emit_json_array(_records(rows, keys))
        elif fmt == "jsonl":
            count = self._emit_jsonl(_records(rows, keys))
        elif fmt == "csv":
            count = self._emit_csv(_records(rows, keys), keys)
        else:
            count = self._emit_table(rows, columns)
        self.stdout.flush()
        if count == 0 and empty_notice:
            self.notice(empty_notice)
        return count

    def _emit_json_array(self, records: Iterator[dict[str, Any]]) -> int:
        # Same bytes as json.dumps(list(records), indent=2), one item at a time.
        out = self.stdout
        count = 0
        for record in records:
            out.write("[\n  " if count == 0 else ",\n  ")
            out.write(json_array_item(record))
            count += 1
        out.write("[]\n" if count == 0 else "\n]\n")
        return count

    @contextmanager
    def json_lines_writer(self, *, columns: Sequence[Column]) -> Iterator[Callable[[Any], None]]:
        """Yield ``emit(part)`` writing JSON lines made partly elsewhere (``-o jsonl``).

        A ``bytes`` part is JSON text rendered by someone else (UTF-8, whole
        lines, each with its newline), written as it is bar the escaping
        :func:`dumps` adds; any other part is a row (an object or a mapping),
        written as :meth:`emit_rows` writes it.  Everything goes straight to
        the binary stream under stdout when there is one.
        """
        keys = [column.key for column in columns]
        self.stdout.flush()
        binary = getattr(self.stdout, "buffer", None)
        write_bytes: Callable[[bytes], Any] = (
            binary.write
            if binary is not None
            else lambda data: self.stdout.write(data.decode("utf-8"))
        )

        def emit(part: Any) -> None:
            if type(part) is bytes:
                if part.isascii() and b"\x7f" not in part:
                    write_bytes(part)
                else:
                    write_bytes(terminal_safe_json(part.decode("utf-8")).encode("utf-8"))
            else:
                record = next(_records((part,), keys))
                write_bytes(dumps(record).encode("utf-8") + b"\n")

        yield emit
        if binary is not None:
            binary.flush()
        self.stdout.flush()

    def _emit_jsonl(self, records: Iterator[dict[str, Any]]) -> int:
        out = self.stdout
        count = 0
        for record in records:
            out.write(dumps(record) + "\n")
            count += 1
        return count

    def _csv_writer(self) -> Any:
        # "\n" rather than the RFC's "\r\n": stdout is a text stream (on
        # Windows "\r\n" would become "\r\r\n") and Unix tools expect "\n";
        # spreadsheets read both.
        return csv.writer(self.stdout, lineterminator="\n")

    def _emit_csv(self, records: Iterator[dict[str, Any]], keys: Sequence[str]) -> int:
        writer = self._csv_writer()
        writer.writerow(keys)
        count = 0
        for record in records:
            writer.writerow([_csv_cell(value) for value in record.values()])
            count += 1
        return count

    # -- tables (the only place rich is imported for stdout) -------------------

    @staticmethod
    def _cell(value: Any, formatter: Callable[[Any], str] | None) -> str:
        text = formatter(value) if formatter is not None else _display(value)
        # Formatter output is untrusted too: it usually embeds the value.
        return inert(text)

    def _emit_table(self, rows: Iterable[Any], columns: Sequence[Column]) -> int:
        shown = [column for column in columns if column.in_table]
        cells: list[list[str]] = []
        for row in rows:
            cells.append([self._cell(_get(row, c.key), c.formatter) for c in shown])
        if not cells or not shown:
            return len(cells)

        from rich.text import Text

        table = self._new_table()
        for column in shown:
            table.add_column(Text(inert(column.title)), overflow="fold")
        for row_cells in cells:
            # Text objects are never parsed for markup, so "[bold]" in data
            # prints literally (the console has markup off as well).
            table.add_row(*(Text(cell) for cell in row_cells))
        self._print(table)
        return len(cells)

    def _emit_key_value_table(self, record: Mapping[str, Any], title: str | None) -> None:
        from rich.text import Text

        table = self._new_table(title=title, show_header=False)
        table.add_column(style="bold", overflow="fold")
        table.add_column(overflow="fold")
        for key, value in record.items():
            table.add_row(Text(inert(key)), Text(self._cell(value, None)))
        self._print(table)

    def _new_table(self, *, title: str | None = None, show_header: bool = True) -> Table:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        return Table(
            title=Text(inert(title)) if title is not None else None,
            title_justify="left",
            show_header=show_header,
            header_style="bold",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            highlight=False,
        )

    def _stdout_console(self) -> Console:
        from rich.console import Console

        tty = self.stdout_is_tty
        color = self.stdout_color
        return Console(
            file=self.stdout,
            # We decided what the stream is; do not let FORCE_COLOR or
            # TTY_COMPATIBLE in the environment put ANSI codes into a pipe.
            force_terminal=tty,
            force_interactive=False,
            # color_system=None emits no ANSI at all (not even bold): that is
            # the contract for pipes and for NO_COLOR / --no-color.
            color_system="auto" if color else None,
            no_color=not color,
            width=None if tty else _pipe_width(),
            markup=False,
            emoji=False,
            highlight=False,
        )

    def _print(self, renderable: RenderableType) -> None:
        console = self._stdout_console()
        if console.is_terminal:
            # On a terminal, long cells fold onto more lines (never "…").
            console.print(renderable)
            return
        # Piped: nothing may wrap, so widen the console to the table's natural
        # width when COLUMNS (or the default) is narrower.  A 150-character
        # email must reach `grep` in one piece.
        natural = console.measure(
            renderable, options=console.options.update_width(_UNBOUNDED)
        ).maximum
        if natural > console.width:
            console.width = natural
        with console.capture() as capture:
            console.print(renderable)
        # Rich pads every cell; drop the trailing blanks it leaves at line ends.
        text = capture.get()
        self.stdout.write("".join(line.rstrip() + "\n" for line in text.splitlines()))

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
