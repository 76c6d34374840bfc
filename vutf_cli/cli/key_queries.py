"""`vutf keys list` and `vutf keys show`: reading API keys.

Registered on the `vutf keys` group by :mod:`vutf_cli.cli.keys`, in the order
the help lists the commands; the decisions (states, filters, paging) are in
:mod:`vutf_cli.services.key_queries`.  ``list`` gives every row or says where
the rest is, as every list does (:mod:`vutf_cli.cli.list_options`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from vutf_cli.cli.context import get_app
from vutf_cli.cli.key_options import KeyArgument, emit_key, key_columns
from vutf_cli.cli.list_options import (
    AllOption,
    CursorOption,
    FieldsOption,
    LimitOption,
    NoHeadersOption,
    NoPagerOption,
    apply_view,
    emit_listing,
    page_limit,
)
from vutf_cli.errors import InvalidInput

__all__ = ["list_", "show"]


def list_(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Option("--user", "-u", metavar="USER", help="Only keys of this user.")
    ] = None,
    active: Annotated[bool, typer.Option("--active", help="Usable keys (the default).")] = False,
    expired: Annotated[bool, typer.Option("--expired", help="Expired keys.")] = False,
    revoked: Annotated[bool, typer.Option("--revoked", help="Revoked keys.")] = False,
    any_state: Annotated[
        bool,
        typer.Option("--any-state", help="Keys in every state, pruned (deleted) ones too."),
    ] = False,
    expiring_within: Annotated[
        str | None,
        typer.Option(
            "--expiring-within",
            metavar="DURATION",
            help="Only keys expiring within this duration (7d).",
        ),
    ] = None,
    unused_for: Annotated[
        str | None,
        typer.Option(
            "--unused-for", metavar="DURATION", help="Only keys not used for this long (90d)."
        ),
    ] = None,
    limit: LimitOption = None,
    cursor: CursorOption = None,
    all_rows: AllOption = False,
    fields: FieldsOption = None,
    no_headers: NoHeadersOption = False,
    no_pager: NoPagerOption = False,
) -> None:
    """List API keys (default: the active ones).

    Oldest first: prefix, name, owner, scopes, dates, uses and state in the
    table; every field with -o json, jsonl or csv (never the digest).

    Every key for json, jsonl and csv, a page in a table.  When rows are
    left out (a table's page, or --limit), the cursor of the next page is
    printed on stderr as "next cursor: ..." (even with --quiet); pass it to
    --cursor with the same filters.

    \b
    Examples:
      vutf keys list --user alice
      vutf keys list --expiring-within 7d --json | jq -r '.[].key_prefix'
      vutf keys list --any-state --unused-for 90d -o csv
      vutf keys list --revoked --all
    """
    from vutf_cli.services import key_queries as keys_service

    chosen = [
        state
        for state, flag in (
            ("active", active),
            ("expired", expired),
            ("revoked", revoked),
            ("all", any_state),
        )
        if flag
    ]
    if len(chosen) > 1:
        raise InvalidInput("--active, --expired, --revoked and --any-state are mutually exclusive")
    state = chosen[0] if chosen else "active"
    app_ctx = get_app(ctx)
    apply_view(app_ctx, fields=fields, no_headers=no_headers, no_pager=no_pager)
    listing = keys_service.stream_keys(
        app_ctx.database(),
        user=user,
        state=state,
        expiring_within=expiring_within,
        unused_for=unused_for,
        limit=page_limit(app_ctx, limit=limit, all_rows=all_rows),
        cursor=cursor,
    )
    hint = "" if state == "all" else " (--any-state shows keys in every state)"
    emit_listing(
        app_ctx,
        listing,
        columns=key_columns(),
        empty_notice=f"no {'' if state == 'all' else state + ' '}API keys found{hint}",
        noun="keys",
    )


def show(
    ctx: typer.Context,
    key: KeyArgument,
    fields: FieldsOption = None,
    no_headers: NoHeadersOption = False,
    no_pager: NoPagerOption = False,
) -> None:
    """Show one API key by id or prefix.

    The key itself is never shown again: it is not stored.

    \b
    Examples:
      vutf keys show vutf_AbC1234
      vutf keys show 0b6f1c1e-2f3a-4c55-9a7e-1d2b3c4d5e6f --json
    """
    from vutf_cli.services import key_queries as keys_service

    app_ctx = get_app(ctx)
    apply_view(app_ctx, fields=fields, no_headers=no_headers, no_pager=no_pager)
    emit_key(app_ctx, keys_service.show_key(app_ctx.database(), key))
