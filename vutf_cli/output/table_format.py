"""``-o table`` (the default): Rich tables for people.

Rich is imported inside the functions that draw, so a command that prints
only messages never imports it.  Every cell goes through
:func:`~vutf_cli.output.sanitize.inert`, and Rich parses no markup, so data
cannot style or drive the terminal.  A table is sized to its cells, so the
rows are collected first.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from vutf_cli.output.columns import Column, field_value
from vutf_cli.output.renderer import Renderer
from vutf_cli.output.sanitize import inert
from vutf_cli.output.serialize import dumps
from vutf_cli.output.stdout import Stdout

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

__all__ = ["TableRenderer", "display"]

# Width for tables written to a pipe or file when COLUMNS is not set.  It is a
# floor, not a limit: a wider table gets the width it needs (see _print).
_PIPE_WIDTH: Final = 240
# "As wide as it likes" when measuring a table's natural width.
_UNBOUNDED: Final = 1_000_000


def display(value: Any) -> str:
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
        return display(value.value)
    if isinstance(value, list | tuple):
        return ", ".join(display(v) for v in value)
    if isinstance(value, set | frozenset):
        return ", ".join(sorted(display(v) for v in value))
    if isinstance(value, Mapping) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return dumps(value)
    return str(value)


def _cell(value: Any, formatter: Callable[[Any], str] | None) -> str:
    text = formatter(value) if formatter is not None else display(value)
    # Formatter output is untrusted too: it usually embeds the value.
    return inert(text)


def _pipe_width() -> int:
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else _PIPE_WIDTH


class _Canvas(io.StringIO):
    """The file Rich is given: it reports stdout's encoding but is never stdout.

    Rich decides on ASCII or Unicode boxes from its file's encoding.  It only
    renders into a capture here, and the text goes out through ``Stdout``:
    Rich answers a broken pipe by exiting 1 itself.
    """

    def __init__(self, encoding: str | None) -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding or "utf-8"


def _new_table(*, title: str | None = None, show_header: bool = True) -> Table:
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


def _console(out: Stdout) -> Console:
    from rich.console import Console

    tty = out.is_tty
    color = out.color
    return Console(
        file=_Canvas(getattr(out.stream, "encoding", None)),
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


def _print(out: Stdout, renderable: RenderableType) -> None:
    console = _console(out)
    if console.is_terminal:
        # On a terminal, long cells fold onto more lines (never "…").
        with console.capture() as capture:
            console.print(renderable)
        out.write(capture.get())
        return
    # Piped: nothing may wrap, so widen the console to the table's natural
    # width when COLUMNS (or the default) is narrower.  A 150-character
    # email must reach `grep` in one piece.
    natural = console.measure(renderable, options=console.options.update_width(_UNBOUNDED)).maximum
    if natural > console.width:
        console.width = natural
    with console.capture() as capture:
        console.print(renderable)
    # Rich pads every cell; drop the trailing blanks it leaves at line ends.
    text = capture.get()
    out.write("".join(line.rstrip() + "\n" for line in text.splitlines()))


class TableRenderer(Renderer):
    def write_object(self, out: Stdout, record: Mapping[str, Any], *, title: str | None) -> None:
        from rich.text import Text

        table = _new_table(title=title, show_header=False)
        table.add_column(style="bold", overflow="fold")
        table.add_column(overflow="fold")
        for key, value in record.items():
            table.add_row(Text(inert(key)), Text(_cell(value, None)))
        _print(out, table)

    def write_rows(self, out: Stdout, rows: Iterable[Any], columns: Sequence[Column]) -> int:
        shown = [column for column in columns if column.in_table]
        cells = [[_cell(field_value(row, c.key), c.formatter) for c in shown] for row in rows]
        if not cells or not shown:
            return len(cells)

        from rich.text import Text

        table = _new_table()
        for column in shown:
            table.add_column(Text(inert(column.title)), overflow="fold")
        for row_cells in cells:
            # Text objects are never parsed for markup, so "[bold]" in data
            # prints literally (the console has markup off as well).
            table.add_row(*(Text(cell) for cell in row_cells))
        _print(out, table)
        return len(cells)
