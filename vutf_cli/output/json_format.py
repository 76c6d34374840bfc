"""``-o json``: one indented object, or one indented array of rows.

The array is streamed: each row is written as it arrives, and the bytes are
exactly ``json.dumps(rows, indent=2)`` of the whole list plus a newline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vutf_cli.output.columns import Column, records
from vutf_cli.output.renderer import Renderer
from vutf_cli.output.serialize import dumps, json_array_item
from vutf_cli.output.stdout import Stdout

__all__ = ["JsonRenderer"]


class JsonRenderer(Renderer):
    errors_as_json = True

    def write_object(
        self, out: Stdout, record: Mapping[str, Any], *, title: str | None, headers: bool = True
    ) -> None:
        out.write(dumps(record, indent=2) + "\n")

    def write_rows(
        self, out: Stdout, rows: Iterable[Any], columns: Sequence[Column], *, headers: bool = True
    ) -> int:
        count = 0
        for record in records(rows, [column.key for column in columns]):
            out.write(("[\n  " if count == 0 else ",\n  ") + json_array_item(record))
            count += 1
        out.write("[]\n" if count == 0 else "\n]\n")
        return count
