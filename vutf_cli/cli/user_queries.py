"""`vutf users list` and `vutf users show`: reading users.

Registered on the `vutf users` group by :mod:`vutf_cli.cli.users`, in the
order the help lists the commands; the decisions (sorting, paging, search,
deleted users) are in :mod:`vutf_cli.services.user_queries`.  ``list`` gives
every row or says where the rest is, as every list does
(:mod:`vutf_cli.cli.list_options`).

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run, and string annotations would be compiled and
evaluated there, twice each (names imported only for type checking are
quoted instead).
"""

from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.cli.context import get_app
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
from vutf_cli.cli.user_options import UserArgument, user_columns, user_fields, user_record
from vutf_cli.errors import InvalidInput

if TYPE_CHECKING:
    from vutf_cli.output import Column

__all__ = ["list_users", "show"]


def _key_columns() -> "list[Column]":
    from dataclasses import fields

    from vutf_cli.domain.views import ApiKeyView
    from vutf_cli.output.columns import USER_KEY_TABLE

    return USER_KEY_TABLE.columns(f.name for f in fields(ApiKeyView))


def list_users(
    ctx: typer.Context,
    active: Annotated[
        bool | None,
        typer.Option("--active/--inactive", help="Only active, or only inactive, users."),
    ] = None,
    superuser: Annotated[
        bool | None,
        typer.Option("--superuser/--no-superuser", help="Only superusers, or only the others."),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            metavar="TEXT",
            help="Case-insensitive substring of username, email or full name (% and _ literal).",
        ),
    ] = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Only deleted users.")] = False,
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Deleted and live users together.")
    ] = False,
    sort: Annotated[
        str,
        typer.Option(
            "--sort",
            metavar="FIELD",
            help="Sort by [username|email|created_at|-username|-email|-created_at] (- descends).",
        ),
    ] = "created_at",
    limit: LimitOption = None,
    cursor: CursorOption = None,
    all_rows: AllOption = False,
    fields: FieldsOption = None,
    no_headers: NoHeadersOption = False,
    no_pager: NoPagerOption = False,
) -> None:
    """List users: all for json, jsonl and csv; a page in a table.

    When rows are left out (a table's page, or --limit), the cursor of the
    next page is printed on stderr as "next cursor: ..." (even with
    --quiet); pass it to --cursor with the same filters and sort.

    \b
    Examples:
      vutf users list
      vutf users list --inactive --search acme --sort -created_at --all
      vutf users list --json | jq -r '.[].email'
      vutf users list --limit 50 --cursor "$CURSOR" -o jsonl
    """
    from vutf_cli.services import user_queries as service

    app_ctx = get_app(ctx)
    apply_view(app_ctx, fields=fields, no_headers=no_headers, no_pager=no_pager)
    if deleted and include_deleted:
        raise InvalidInput("use either --deleted or --include-deleted, not both")
    listing = service.stream_users(
        app_ctx.database(),
        active=active,
        superuser=superuser,
        search=search,
        deleted="deleted" if deleted else "all" if include_deleted else "live",
        sort=sort,
        limit=page_limit(app_ctx, limit=limit, all_rows=all_rows),
        cursor=cursor,
    )
    emit_listing(
        app_ctx, listing, columns=user_columns(), empty_notice="no users found", noun="users"
    )


def show(
    ctx: typer.Context,
    user: UserArgument,
    with_keys: Annotated[
        bool, typer.Option("--with-keys", help="Also list the user's API keys.")
    ] = False,
    permissions: Annotated[
        bool,
        typer.Option(
            "--permissions",
            help="Show the user's effective scopes now and the roles granting each instead.",
        ),
    ] = False,
    fields: FieldsOption = None,
    no_headers: NoHeadersOption = False,
    no_pager: NoPagerOption = False,
) -> None:
    """Show one user (deleted users too, marked as such).

    \b
    Examples:
      vutf users show alice
      vutf users show alice@example.com --with-keys
      vutf users show alice --json | jq .version
      vutf users show bob --permissions
    """
    from vutf_cli.services import user_queries as service

    app_ctx = get_app(ctx)
    apply_view(app_ctx, fields=fields, no_headers=no_headers, no_pager=no_pager)
    if permissions:
        from vutf_cli.cli.user_roles import show_permissions

        show_permissions(app_ctx, user)
        return
    detail = service.show_user(app_ctx.database(), user, with_keys=with_keys)
    terminal = app_ctx.terminal
    if detail.user.is_deleted:
        terminal.notice(f"user '{detail.user.username}' is deleted")
    if detail.api_keys is None:
        terminal.emit_object(detail.user, fields=user_fields())
    elif terminal.is_table:
        terminal.emit_object(detail.user, fields=user_fields())
        terminal.stdout.write("\n")
        terminal.emit_rows(detail.api_keys, columns=_key_columns(), empty_notice="no API keys")
    else:
        terminal.emit_object(user_record(detail.user, api_keys=list(detail.api_keys)))
