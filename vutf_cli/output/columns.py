"""``Column``, one field of listed rows; the table layouts of the lists; reading rows.

A row is a service result: a frozen dataclass view or a mapping.

The table layouts (:data:`USER_TABLE`, :data:`KEY_TABLE`, :data:`AUDIT_TABLE`,
:data:`USER_KEY_TABLE`) are the one place that says, per list, which columns
a table shows, in which order, which are free text that may be shortened
with ``…``, and in which order columns are dropped when a terminal is too
narrow (README "Tables").  Everything else about a row (json, jsonl, csv)
carries every field, whatever the layout says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from vutf_cli.domain.time_input import table_time

__all__ = [
    "ASSIGNMENT_TABLE",
    "AUDIT_TABLE",
    "KEY_TABLE",
    "PERMISSION_TABLE",
    "ROLE_CHANGE_TABLE",
    "ROLE_TABLE",
    "USER_KEY_TABLE",
    "USER_TABLE",
    "Column",
    "TableColumn",
    "TableLayout",
    "field_names",
    "field_value",
    "records",
]

# "keep": an identifier, time, state or number; never cut (a table drops the
# column instead).  "shorten": free text; cut with "…" to fit.
Fit = Literal["keep", "shorten"]


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """One field of a row: which attribute to read and how to show it.

    ``key`` is the dataclass field (schema column) name; it is also the JSON
    key and the CSV header, so machine output always carries every column.
    ``in_table=False`` hides the column from ``-o table`` only (``wide``
    shows it in ``-o wide``).  ``formatter`` turns the raw value into table
    text (e.g. "never" for no time); it is never used for json/jsonl/csv,
    which carry the exact data.  ``fit`` and ``drop_rank`` say how a table
    narrower than its rows copes (lowest rank dropped first; None: never
    dropped); ``order`` places the column in a table (json keeps the list's
    order).
    """

    key: str
    header: str | None = None
    in_table: bool = True
    formatter: Callable[[Any], str] | None = None
    fit: Fit = "keep"
    drop_rank: int | None = None
    order: int = 0
    wide: bool = False

    @property
    def title(self) -> str:
        """The table header: ``header`` if given, else the key."""
        return self.header if self.header is not None else self.key

    def selected(self) -> Column:
        """This column as ``--fields`` shows it: in a table too, never dropped."""
        return dataclasses.replace(self, in_table=True, drop_rank=None)


def _never(value: Any) -> str:
    """An expiry or a last use: "never" for no time."""
    if not isinstance(value, datetime):
        return "never"
    return table_time(value)


@dataclasses.dataclass(frozen=True, slots=True)
class TableColumn:
    """A column a table shows: the field (or a derived value), its header, its fit."""

    key: str
    header: str | None = None
    fit: Fit = "keep"
    formatter: Callable[[Any], str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TableLayout:
    """What one list's table shows and what it gives up first on a narrow terminal.

    ``shown``: the columns in display order.  ``drop_order``: the keys of
    ``shown`` that may be dropped, the first first; the others always stay.
    ``wide``: what ``-o wide`` adds (every column of ``shown`` is in it too,
    none dropped or shortened).
    """

    shown: tuple[TableColumn, ...]
    drop_order: tuple[str, ...]
    wide: tuple[str, ...] = ()

    def columns(self, fields: Iterable[str]) -> list[Column]:
        """Every field of the row (json order) with this layout's table settings."""
        fields = list(fields)
        position = {column.key: index for index, column in enumerate(self.shown)}
        rank = {key: index for index, key in enumerate(self.drop_order)}
        by_key = {column.key: column for column in self.shown}
        result: list[Column] = []
        for key in fields:
            spec = by_key.get(key)
            if spec is None:
                result.append(
                    Column(key, in_table=False, wide=key in self.wide, order=len(self.shown))
                )
            else:
                result.append(
                    Column(
                        key,
                        header=spec.header,
                        formatter=spec.formatter,
                        fit=spec.fit,
                        drop_rank=rank.get(key),
                        order=position[key],
                    )
                )
        return result


# `users list`: `state` (UserView.state: active, inactive, locked or deleted)
# rather than `is_active`, so a deleted user never shows as "active yes".
USER_TABLE = TableLayout(
    shown=(
        TableColumn("username"),
        TableColumn("email"),
        TableColumn("state"),
        TableColumn("full_name", fit="shorten"),
        TableColumn("is_superuser", "superuser"),
        TableColumn("is_verified", "verified"),
        TableColumn("created_at"),
    ),
    drop_order=("is_verified", "full_name", "created_at", "is_superuser", "email"),
    wide=("id", "last_login_at", "updated_at"),
)

# `keys list`.
KEY_TABLE = TableLayout(
    shown=(
        TableColumn("key_prefix", "prefix"),
        TableColumn("name"),
        TableColumn("username", "owner"),
        TableColumn("scopes", fit="shorten"),
        TableColumn("created_at", "created"),
        TableColumn("expires_at", "expires", formatter=_never),
        TableColumn("last_used_at", "last used", formatter=_never),
        TableColumn("usage_count", "uses"),
        TableColumn("state"),
    ),
    drop_order=("usage_count", "created_at", "last_used_at", "scopes", "expires_at", "username"),
    wide=("id", "description", "last_used_ip"),
)

# The keys of one user (`users show --with-keys`): the owner goes without saying.
USER_KEY_TABLE = TableLayout(
    shown=(
        TableColumn("name"),
        TableColumn("key_prefix", "prefix"),
        TableColumn("state"),
        TableColumn("scopes", fit="shorten"),
        TableColumn("expires_at", "expires", formatter=_never),
        TableColumn("last_used_at", "last used", formatter=_never),
    ),
    drop_order=("last_used_at", "scopes", "expires_at"),
    wide=("id", "description", "created_at", "usage_count"),
)

# `audit list` and `audit follow`.
AUDIT_TABLE = TableLayout(
    shown=(
        TableColumn("seq"),
        TableColumn("created_at"),
        TableColumn("actor"),
        TableColumn("action"),
        TableColumn("resource_type"),
        TableColumn("resource_id"),
        TableColumn("status"),
    ),
    drop_order=("resource_type", "resource_id", "actor", "created_at"),
    wide=("user_id", "duration_ms", "error_message"),
)

# `roles list|show` (issue 15).
ROLE_TABLE = TableLayout(
    shown=(
        TableColumn("name"),
        TableColumn("scopes", fit="shorten"),
        TableColumn("is_builtin", "built-in"),
        TableColumn("members"),
        TableColumn("description", fit="shorten"),
    ),
    drop_order=("description", "members", "is_builtin"),
    wide=("id", "created_at", "updated_at"),
)

# `roles members`: one row per assignment.
ASSIGNMENT_TABLE = TableLayout(
    shown=(
        TableColumn("username", "user"),
        TableColumn("role"),
        TableColumn("state"),
        TableColumn("expires_at", "expires", formatter=_never),
        TableColumn("granted_by"),
        TableColumn("granted_at", "granted"),
    ),
    drop_order=("granted_at", "granted_by", "role"),
    wide=("id", "scopes"),
)

# What `users add-role|remove-role` and `roles prune-expired` did, one row per user.
ROLE_CHANGE_TABLE = TableLayout(
    shown=(
        TableColumn("username", "user"),
        TableColumn("role"),
        TableColumn("outcome"),
        TableColumn("expires_at", "expires", formatter=_never),
        TableColumn("dry_run", "dry run"),
    ),
    drop_order=("dry_run", "expires_at"),
    wide=("assignment_id", "granted_by"),
)

# `users show --permissions`: one row per effective scope.
PERMISSION_TABLE = TableLayout(
    shown=(
        TableColumn("scope"),
        TableColumn("sources", "granted by", fit="shorten"),
        TableColumn("expires_at", "until", formatter=_never),
    ),
    drop_order=("expires_at",),
    wide=("username",),
)


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
