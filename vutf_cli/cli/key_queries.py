"""`vutf keys list` and `vutf keys show`: reading API keys.

Registered on the `vutf keys` group by :mod:`vutf_cli.cli.keys`, in the order
the help lists the commands; the decisions (states, filters, paging) are in
:mod:`vutf_cli.services.key_queries`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vutf_cli.cli.context import get_app
from vutf_cli.cli.key_options import KeyArgument, emit_key, key_columns
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
    all_: Annotated[
        bool, typer.Option("--all", help="Every key, including pruned (deleted) ones.")
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
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=1000, help="Keys per page (1-1000).")
    ] = 50,
    cursor: Annotated[
        str | None,
        typer.Option(
            "--cursor", metavar="CURSOR", help="Continue after the page that printed this cursor."
        ),
    ] = None,
) -> None:
    """List API keys (default: the active ones).

    Oldest first: prefix, name, owner, scopes, dates, uses and state in the
    table; every field with -o json, jsonl or csv (never the digest).

    Pages hold --limit keys; when there are more, the cursor of the next page
    is printed on stderr as "next cursor: ..." (even with --quiet); pass it
    to --cursor with the same filters.

    \b
    Examples:
      vutf keys list --user alice
      vutf keys list --expiring-within 7d --json | jq -r '.[].key_prefix'
      vutf keys list --all --unused-for 90d -o csv
    """
    from vutf_cli.services import key_queries as keys_service

    chosen = [
        state
        for state, flag in (
            ("active", active),
            ("expired", expired),
            ("revoked", revoked),
            ("all", all_),
        )
        if flag
    ]
    if len(chosen) > 1:
        raise InvalidInput("--active, --expired, --revoked and --all are mutually exclusive")
    state = chosen[0] if chosen else "active"
    app_ctx = get_app(ctx)
    page = keys_service.list_keys(
        app_ctx.database(),
        user=user,
        state=state,
        expiring_within=expiring_within,
        unused_for=unused_for,
        limit=limit,
        cursor=cursor,
    )
    hint = "" if state == "all" else " (--all shows keys in every state)"
    app_ctx.terminal.emit_rows(
        page.items, columns=key_columns(), empty_notice=f"no {state} API keys found{hint}"
    )
    if page.next_cursor is not None:
        # Written even with --quiet (as `vutf users list` does): a script needs it.
        app_ctx.terminal.stderr.write(f"next cursor: {page.next_cursor}\n")
        app_ctx.terminal.stderr.flush()


def show(ctx: typer.Context, key: KeyArgument) -> None:
    """Show one API key by id or prefix.

    The key itself is never shown again: it is not stored.

    \b
    Examples:
      vutf keys show vutf_AbC1234
      vutf keys show 0b6f1c1e-2f3a-4c55-9a7e-1d2b3c4d5e6f --json
    """
    from vutf_cli.services import key_queries as keys_service

    app_ctx = get_app(ctx)
    emit_key(app_ctx, keys_service.show_key(app_ctx.database(), key))
