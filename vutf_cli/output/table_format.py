"""``-o table`` (the default) and ``-o wide``: aligned columns for people.

Every cell goes through :func:`~vutf_cli.output.sanitize.inert`, and nothing
parses markup, so data cannot style or drive the terminal.

How a list fits a terminal (README "Tables"):

* Identifiers, emails, key prefixes, actions, seqs, states, numbers and
  times (``fit="keep"``) are never cut or split; free text
  (``fit="shorten"``) is cut with ``…``.
* When the row is wider than the terminal, columns are dropped in the order
  of their ``drop_rank`` (each list's layout in
  :mod:`~vutf_cli.output.columns`), until it fits.  ``-o wide`` drops and
  shortens nothing and adds the layout's wide columns.
* Piped, a table is never narrowed: a 150-character email reaches ``grep``
  in one piece.
* Rows are written in chunks as they arrive: the column widths come from the
  first chunk, a later wider identifier widens its column from there on, so
  a 10,000-row table starts printing at once and is never held in memory.
  A stream whose rows come one at a time (``audit follow``,
  :meth:`TableRenderer.stream_rows`) takes its widths from a sample of rows
  like those to come and writes each row as it arrives.

Rich is imported only for cell widths, ``…`` and bold headers.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from itertools import islice
from typing import Any, ClassVar, Final

from vutf_cli.domain.time_input import table_time
from vutf_cli.output.columns import Column, field_value
from vutf_cli.output.renderer import Renderer
from vutf_cli.output.sanitize import inert
from vutf_cli.output.serialize import dumps
from vutf_cli.output.stdout import Stdout

__all__ = ["TableRenderer", "WideTableRenderer", "display"]

# Spaces between two columns.
_GAP: Final = "  "
# Rows measured before the first line is written, then rows written at a time.
_FIRST_CHUNK: Final = 100
_CHUNK: Final = 500
# The narrowest a shortened free-text column gets (its header may be wider).
_MIN_SHORTENED: Final = 8


def display(value: Any) -> str:
    """Default table text for a value (people read this; machines get json/csv)."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Enum):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        # UTC, or the zone VUTF_TIMEZONE chose (domain/time_input owns the rule).
        return table_time(value)
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


def _width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _fit_cell(text: str, width: int, *, shorten: bool) -> str:
    """``text`` in a column ``width`` wide: cut with "…" if free text, else whole."""
    size = _width(text)
    if size > width and shorten:
        from rich.text import Text

        cut = Text(text)
        cut.truncate(width, overflow="ellipsis")
        return cut.plain
    return text + " " * max(width - size, 0)


def _line(cells: Iterable[str]) -> str:
    # No blanks at the end of a line: the last column is not padded.
    return _GAP.join(cells).rstrip(" ") + "\n"


def terminal_width(out: Stdout) -> int | None:
    """How wide a table may be: the terminal's width, or None (piped: no limit)."""
    if not out.is_tty:
        return None
    # COLUMNS first, then the terminal of the original stdout (also under a pager).
    return max(shutil.get_terminal_size().columns, 20)


@dataclasses.dataclass
class _Layout:
    columns: list[Column]
    widths: list[int]

    def line(self, cells: Sequence[str]) -> str:
        return _line(
            _fit_cell(cell, width, shorten=column.fit == "shorten")
            for cell, width, column in zip(cells, self.widths, self.columns, strict=True)
        )

    def widen(self, cells: Sequence[str]) -> None:
        """A later identifier wider than its column widens it from now on (never cut)."""
        for index, (cell, column) in enumerate(zip(cells, self.columns, strict=True)):
            if column.fit == "keep":
                self.widths[index] = max(self.widths[index], _width(cell))


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(_GAP) * max(len(widths) - 1, 0)


def fit_columns(
    columns: Sequence[Column],
    natural: Sequence[int],
    titles: Sequence[int],
    width: int | None,
) -> list[int]:
    """The indexes of the columns that stay so that a row fits ``width`` (None: all).

    Columns without a ``drop_rank`` always stay (even when the row is then
    still too wide); the others are taken the most important first (the
    highest rank) while they fit, a free-text column at its narrowest.  So
    the columns are given up in the layout's drop order, and a narrow column
    is not given up for a wide one that could not fit anyway.
    """
    if width is None:
        return list(range(len(columns)))

    def minimum(i: int) -> int:
        if columns[i].fit == "shorten":
            return min(natural[i], max(titles[i], _MIN_SHORTENED))
        return natural[i]

    kept = [i for i, column in enumerate(columns) if column.drop_rank is None]
    optional = sorted(
        (i for i, column in enumerate(columns) if column.drop_rank is not None),
        key=lambda i: -(columns[i].drop_rank or 0),
    )
    for i in optional:
        candidate = sorted([*kept, i])
        if _total([minimum(j) for j in candidate]) <= width:
            kept = candidate
    return kept


def _layout(
    shown: Sequence[Column], cells: Sequence[Sequence[str]], *, headers: bool, width: int | None
) -> tuple[_Layout, list[int]]:
    titles = [_width(inert(column.title)) if headers else 0 for column in shown]
    natural = [max([titles[i], *(_width(row[i]) for row in cells)]) for i in range(len(shown))]
    kept = fit_columns(shown, natural, titles, width)
    widths = [natural[i] for i in kept]
    if width is not None and _total(widths) > width:
        # Give the free-text columns what is left, the first first.
        spare = width - _total(
            [
                min(natural[i], max(titles[i], _MIN_SHORTENED))
                if shown[i].fit == "shorten"
                else natural[i]
                for i in kept
            ]
        )
        for position, i in enumerate(kept):
            if shown[i].fit != "shorten":
                continue
            floor = min(natural[i], max(titles[i], _MIN_SHORTENED))
            widths[position] = floor + max(min(spare, natural[i] - floor), 0)
            spare -= widths[position] - floor
    return _Layout([shown[i] for i in kept], widths), kept


def _bold(text: str, out: Stdout) -> str:
    if not out.color:
        return text
    from rich.color import ColorSystem
    from rich.style import Style

    return Style(bold=True).render(text, color_system=ColorSystem.STANDARD)


def _rule(out: Stdout, width: int) -> str:
    """The line under the header: box drawing where the stream can encode it."""
    encoding = (getattr(out.stream, "encoding", None) or "utf-8").lower().replace("-", "")
    return ("─" if encoding in ("utf8", "utf16", "utf32") else "-") * width + "\n"


def _chunks(rows: Iterable[Any], first: int, size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    chunk = list(islice(iterator, first))
    while chunk:
        yield chunk
        chunk = list(islice(iterator, size))


class TableRenderer(Renderer):
    # -o wide: every column of the layout, none dropped or shortened.
    wide: ClassVar[bool] = False
    for_people = True

    def write_object(
        self, out: Stdout, record: Mapping[str, Any], *, title: str | None, headers: bool = True
    ) -> None:
        # One field a line: the name, then the value whole (a terminal wraps
        # a long one; it is never cut or folded mid-word here).
        names = [inert(str(key)) for key in record]
        pad = max((_width(name) for name in names), default=0)
        text = inert(title) + "\n" if title is not None and headers else ""
        for name, value in zip(names, record.values(), strict=True):
            label = _bold(name, out) + " " * (pad - _width(name))
            text += _line((label, _cell(value, None)))
        out.write(text)

    def _shown(self, columns: Sequence[Column]) -> list[Column]:
        return sorted(
            (c for c in columns if c.in_table or (self.wide and c.wide)), key=lambda c: c.order
        )

    def _start(
        self, out: Stdout, shown: Sequence[Column], cells: Sequence[Sequence[str]], headers: bool
    ) -> tuple[_Layout, list[int]]:
        """The layout measured on ``cells``, its header written."""
        width = None if self.wide else terminal_width(out)
        layout, kept = _layout(shown, cells, headers=headers, width=width)
        if headers:
            titles = [inert(column.title) for column in layout.columns]
            header = layout.line(titles).rstrip("\n")
            out.write(_bold(header, out) + "\n" + _rule(out, _total(layout.widths)))
        return layout, kept

    @staticmethod
    def _lines(layout: _Layout, kept: Sequence[int], cells: Sequence[Sequence[str]]) -> str:
        text = []
        for row_cells in cells:
            visible = [row_cells[i] for i in kept]
            layout.widen(visible)
            text.append(layout.line(visible))
        return "".join(text)

    def write_rows(
        self, out: Stdout, rows: Iterable[Any], columns: Sequence[Column], *, headers: bool = True
    ) -> int:
        shown = self._shown(columns)
        if not shown:
            return sum(1 for _ in rows)
        count = 0
        started: tuple[_Layout, list[int]] | None = None
        for chunk in _chunks(rows, _FIRST_CHUNK, _CHUNK):
            cells = _cells(chunk, shown)
            if started is None:
                started = self._start(out, shown, cells, headers)
            out.write(self._lines(*started, cells))
            out.flush()
            count += len(chunk)
        return count

    def stream_rows(
        self,
        out: Stdout,
        rows: Iterable[Any],
        columns: Sequence[Column],
        *,
        sample: Sequence[Any] = (),
        headers: bool = True,
    ) -> int:
        # The header is written at once (the next row may take an hour), so
        # the widths and the columns a narrow terminal keeps come from
        # ``sample``, as they come from the first chunk of write_rows.
        shown = self._shown(columns)
        if not shown:
            return super().stream_rows(out, rows, columns, headers=headers)
        layout, kept = self._start(out, shown, _cells(sample, shown), headers)
        out.flush()
        count = 0
        for row in rows:
            out.write(self._lines(layout, kept, _cells([row], shown)))
            out.flush()
            count += 1
        return count


def _cells(rows: Iterable[Any], shown: Sequence[Column]) -> list[list[str]]:
    return [
        [_cell(field_value(row, column.key), column.formatter) for column in shown] for row in rows
    ]


class WideTableRenderer(TableRenderer):
    wide = True
