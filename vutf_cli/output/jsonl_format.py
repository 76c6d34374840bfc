"""``-o jsonl``: one compact JSON object per line, written as each row arrives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vutf_cli.output.columns import Column, records
from vutf_cli.output.renderer import Renderer
from vutf_cli.output.serialize import dumps
from vutf_cli.output.stdout import Stdout

__all__ = ["JsonLinesRenderer", "json_line"]


def json_line(record: Mapping[str, Any]) -> str:
    """One row as its JSON line, newline included."""
    return dumps(record) + "\n"


class JsonLinesRenderer(Renderer):
    errors_as_json = True

    def write_object(
        self, out: Stdout, record: Mapping[str, Any], *, title: str | None, headers: bool = True
    ) -> None:
        out.write(json_line(record))

    def write_rows(
        self, out: Stdout, rows: Iterable[Any], columns: Sequence[Column], *, headers: bool = True
    ) -> int:
        count = 0
        for record in records(rows, [column.key for column in columns]):
            out.write(json_line(record))
            count += 1
        return count
