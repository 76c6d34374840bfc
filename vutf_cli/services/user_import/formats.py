"""Reading an import file: its format (json, jsonl, csv) and its records, with their lines.

Nothing is validated here beyond the file's shape and its column names:
:mod:`vutf_cli.services.user_import.validation` checks each record.
"""

from __future__ import annotations

import csv
import io
import operator
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any, Final

from vutf_cli.domain.csv_cells import unescape_cell
from vutf_cli.errors import InvalidInput
from vutf_cli.input_documents import JsonRefused, decode_json, parse_json
from vutf_cli.services.user_import.records import (
    IMPORT_COLUMNS,
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    ParsedFile,
    RawRecord,
    json_type,
)

__all__ = ["FORMATS", "csv_value", "decode", "detect_format", "parse_records"]

FORMATS: Final = ("json", "jsonl", "csv")
_SUFFIX_FORMATS: Final = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def detect_format(text: str, *, explicit: str | None, source: str | None) -> str:
    """``explicit`` if given, else from the file suffix, else from the first character."""
    if explicit is not None:
        fmt = explicit.strip().lower()
        if fmt not in FORMATS:
            raise InvalidInput(
                f"unknown import format {explicit!r}", hint="use one of: " + ", ".join(FORMATS)
            )
        return fmt
    if source and source != "-":
        by_suffix = _SUFFIX_FORMATS.get(PurePath(source).suffix.lower())
        if by_suffix is not None:
            return by_suffix
    first = text.lstrip()[:1]
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    return "csv"


def decode(data: bytes) -> str:
    """UTF-8 text (a byte order mark is dropped); InvalidInput for anything else."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the import file is not valid UTF-8 (at byte {exc.start})") from None


def parse_records(data: bytes, *, fmt: str | None = None, source: str | None = None) -> ParsedFile:
    """Read every record of ``data``; InvalidInput for a file that is not usable at all."""
    text = decode(data)
    if not text.strip():
        raise InvalidInput("the import file is empty")
    chosen = detect_format(text, explicit=fmt, source=source)
    if chosen == "json":
        records = list(_json_records(text))
    elif chosen == "jsonl":
        records = list(_jsonl_records(text))
    else:
        records = list(_csv_records(text))
    if chosen != "csv":
        _check_columns({name for record in records for name in record.values})
    return ParsedFile(format=chosen, records=tuple(records))


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _json_records(text: str) -> Iterator[RawRecord]:
    """The objects of a JSON array, each with the line it starts on."""
    index = _skip_space(text, 0)
    if text[index : index + 1] != "[":
        raise InvalidInput(
            f"line {_line_of(text, index)}: expected a JSON array of user objects",
            hint="for one object per line use --format jsonl",
        )
    index = _skip_space(text, index + 1)
    if text[index : index + 1] == "]":
        index += 1
    else:
        row = 1
        # Counted on from the previous object: counting from the top for each
        # one made a 10,000-object file take seconds.
        line, counted_to = 1, 0
        while True:
            start = index
            line += text.count("\n", counted_to, start)
            counted_to = start
            try:
                value, index = decode_json(text, index)
            except JsonRefused as exc:
                raise _refused(exc, line) from None
            yield _object_record(value, row, line, in_array=True)
            row += 1
            index = _skip_space(text, index)
            separator = text[index : index + 1]
            if separator == "]":
                index += 1
                break
            if separator != ",":
                raise InvalidInput(
                    f"line {_line_of(text, index)}: not valid JSON: expected ',' or ']'"
                )
            index = _skip_space(text, index + 1)
    if _skip_space(text, index) != len(text):
        raise InvalidInput(
            f"line {_line_of(text, index)}: not valid JSON: extra data after the array"
        )


def _jsonl_records(text: str) -> Iterator[RawRecord]:
    row = 1
    # Lines end at "\n" only (a "\r" before it is JSON whitespace):
    # str.splitlines would also cut at U+2028, U+0085 and other characters
    # that JSON allows raw inside a string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = parse_json(line)
        except JsonRefused as exc:
            raise _refused(exc, number, lines_before=number - 1) from None
        yield _object_record(value, row, number)
        row += 1


def _refused(exc: JsonRefused, line: int, *, lines_before: int = 0) -> InvalidInput:
    """``exc`` for the value that starts on ``line``: at json's own line and column
    when it gives them (``lines_before``: the lines above the text json read)."""
    if exc.lineno is None:
        return InvalidInput(f"line {line}: not valid JSON: {exc.reason}")
    return InvalidInput(
        f"line {exc.lineno + lines_before}: not valid JSON: {exc.reason} (column {exc.colno})"
    )


def _object_record(value: Any, row: int, line: int, *, in_array: bool = False) -> RawRecord:
    if not isinstance(value, dict):
        raise InvalidInput(f"line {line}: expected a JSON object, got {json_type(value)}")
    return RawRecord(row=row, line=line, values=value, in_array=in_array)


def _check_columns(names: set[str]) -> None:
    unknown = sorted(names - KNOWN_COLUMNS)
    if unknown:
        raise InvalidInput(
            "unknown column(s): " + ", ".join(repr(name)[:60] for name in unknown),
            hint="known columns: " + ", ".join(IMPORT_COLUMNS) + " (plus those of users export)",
        )


_starts_with_apostrophe: Final = operator.methodcaller("startswith", "'")


def csv_value(cell: str) -> str:
    """The value a CSV cell holds (the escape rule: :mod:`vutf_cli.domain.csv_cells`)."""
    return unescape_cell(cell)


def _csv_records(text: str) -> Iterator[RawRecord]:
    # newline="": the csv module sees the raw line ends, so "\r\n" and quoted
    # newlines inside cells are read correctly.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise InvalidInput(f"line 1: not valid CSV: {exc}") from None
    columns = [name.strip() for name in header]
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        raise InvalidInput("line 1: duplicate column(s): " + ", ".join(duplicated))
    _check_columns(set(columns))
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InvalidInput("line 1: missing required column(s): " + ", ".join(missing))
    row = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"line {start}: not valid CSV: {exc}") from None
        if not "".join(cells).strip():
            continue
        row += 1
        if len(cells) != len(columns):
            # Reported as a problem of this row, not the whole file.
            yield RawRecord(row, start, {}, from_csv=True, cell_count=len(cells))
            continue
        values = dict(zip(columns, cells, strict=True))
        if any(map(_starts_with_apostrophe, cells)):  # rare: only then look cell by cell
            values = {
                name: cell if name == "password" else csv_value(cell)
                for name, cell in values.items()
            }
        yield RawRecord(row, start, values, from_csv=True)
