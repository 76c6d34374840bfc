"""``-o csv``: a header line, then one line per row; every column, exact values.

Strings that a spreadsheet would run as a formula, and strings that start
with ``'``, get a leading ``'`` (:func:`~vutf_cli.output.sanitize.csv_safe`),
which ``users import`` removes exactly; numbers keep their value.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from vutf_cli.output.columns import Column, records
from vutf_cli.output.renderer import Renderer
from vutf_cli.output.sanitize import csv_safe
from vutf_cli.output.serialize import dumps, to_jsonable
from vutf_cli.output.stdout import Stdout

__all__ = ["CsvRenderer", "csv_cell"]


def csv_cell(value: Any) -> Any:
    """A CSV cell: numbers stay numbers, every string goes through csv_safe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return csv_cell(to_jsonable(value))
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
    return csv_cell(to_jsonable(value))


def _writer(out: Stdout) -> Any:
    # "\n" rather than the RFC's "\r\n": stdout is a text stream (on Windows
    # "\r\n" would become "\r\r\n") and Unix tools expect "\n"; spreadsheets
    # read both.  csv.writer writes through ``out``, so a closed pipe is
    # PipeClosed here too.
    return csv.writer(out, lineterminator="\n")


class CsvRenderer(Renderer):
    def write_object(
        self, out: Stdout, record: Mapping[str, Any], *, title: str | None, headers: bool = True
    ) -> None:
        writer = _writer(out)
        if headers:
            writer.writerow(record.keys())
        writer.writerow([csv_cell(value) for value in record.values()])

    def write_rows(
        self, out: Stdout, rows: Iterable[Any], columns: Sequence[Column], *, headers: bool = True
    ) -> int:
        keys = [column.key for column in columns]
        writer = _writer(out)
        if headers:
            writer.writerow(keys)
        count = 0
        for record in records(rows, keys):
            writer.writerow([csv_cell(value) for value in record.values()])
            count += 1
        return count
