"""What the `vutf keys` commands share: the KEY argument, the scope and expiry options, and
how a key is rendered (the table's columns, one key, a one-line description).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vutf_cli.cli.context import AppContext

if TYPE_CHECKING:
    from vutf_cli.domain.views import ApiKeyView
    from vutf_cli.output import Column

__all__ = [
    "DETAIL_FIELDS",
    "ExpiresAtOption",
    "ExpiresInOption",
    "KeyArgument",
    "NoExpiryOption",
    "ScopeOption",
    "SecretFileOption",
    "describe_key",
    "emit_key",
    "emit_key_change",
    "format_time",
    "key_columns",
    "key_record",
    "time_or_never",
]

# What the key-value table of one key shows (machine formats get every field).
DETAIL_FIELDS = [
    "id",
    "key_prefix",
    "name",
    "username",
    "user_id",
    "scopes",
    "state",
    "description",
    "created_at",
    "created_by",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "last_used_ip",
    "usage_count",
]

# -- shared options ---------------------------------------------------------------------
KeyArgument = Annotated[
    str, typer.Argument(metavar="KEY", help="Key id, or its prefix (e.g. vutf_AbC1234).")
]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        "-s",
        metavar="SCOPE",
        help="Scope to grant; repeat it or separate with commas (read,write,targets:*).",
        show_default=False,
    ),
]
ExpiresInOption = Annotated[
    str | None,
    typer.Option(
        "--expires-in", metavar="DURATION", help="Expire after this long from now (90d, 12h, 2w)."
    ),
]
ExpiresAtOption = Annotated[
    str | None,
    typer.Option(
        "--expires-at",
        metavar="TIME",
        help=(
            "Expire at TIME: ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC) "
            "or 'tomorrow 09:00'."
        ),
    ),
]
NoExpiryOption = Annotated[bool, typer.Option("--no-expiry", help="Never expire.")]
SecretFileOption = Annotated[
    Path | None,
    typer.Option(
        "--secret-file",
        metavar="PATH",
        help="Write the key to this NEW file (mode 0600) instead of stdout.",
        dir_okay=False,
    ),
]


# -- rendering helpers ------------------------------------------------------------------
def format_time(value: Any, *, none: str = "") -> str:
    """A UTC time as the table shows it; ``none`` for no time."""
    if not isinstance(value, datetime):
        return none
    from vutf_cli.domain.time_input import table_time

    return table_time(value)


def time_or_never(value: Any) -> str:
    """An expiry or last use as the table shows it: "never" for none."""
    return format_time(value, none="never")


def key_columns() -> list[Column]:
    """Every ApiKeyView field (never the digest, which no view holds); the table's are
    KEY_TABLE's.  json/jsonl/csv order: id, the table's columns, the rest."""
    from vutf_cli.domain.views import ApiKeyView
    from vutf_cli.output.columns import KEY_TABLE

    shown = [column.key for column in KEY_TABLE.shown]
    rest = [f.name for f in dataclasses.fields(ApiKeyView) if f.name not in shown]
    return KEY_TABLE.columns(["id", *shown, *(name for name in rest if name != "id")])


def key_record(view: ApiKeyView, **extra: Any) -> dict[str, Any]:
    """Every field of ``view`` (plus ``extra``) as one flat mapping."""
    return {**{f.name: getattr(view, f.name) for f in dataclasses.fields(view)}, **extra}


def emit_key(app_ctx: AppContext, view: ApiKeyView, *, title: str | None = None) -> None:
    """`keys show`: the key's fields (a table shows DETAIL_FIELDS)."""
    terminal = app_ctx.terminal
    if terminal.is_table:
        terminal.emit_object(view, fields=DETAIL_FIELDS, title=title)
    else:
        terminal.emit_object(view)


def emit_key_change(app_ctx: AppContext, view: ApiKeyView) -> None:
    """What a mutation of a key prints after its summary line (the record for -o json)."""
    app_ctx.emit_change(view)


def describe_key(view: ApiKeyView) -> str:
    return f"{view.key_prefix}  {view.name!r} of {view.username}  ({view.state})"
