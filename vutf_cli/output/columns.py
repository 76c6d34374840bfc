"""``Column``, one field of listed rows, and reading rows by their fields.

A row is a service result: a frozen dataclass view or a mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

__all__ = ["Column", "field_names", "field_value", "records"]


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


def field_names(obj: Any) -> list[str]:
    """All fields of one result, in order."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [f.name for f in dataclasses.fields(obj)]
    if isinstance(obj, Mapping):
        return [str(k) for k in obj]
    raise TypeError(f"cannot list the fields of {type(obj).__name__}; pass fields=")


def field_value(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj[key]
    return getattr(obj, key)


def records(rows: Iterable[Any], keys: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Each row as a dict of exactly ``keys``, in that order (values unconverted)."""
    for row in rows:
        if isinstance(row, Mapping):
            yield {key: row[key] for key in keys}
        else:
            yield {key: getattr(row, key) for key in keys}
