"""`vutf db`: the schema (wraps Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer

from vutf_cli.cli.context import get_app

app = typer.Typer(
    help="Manage the database schema (migrations, status, connectivity).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_STATUS_FIELDS = ["database", "dialect", "current", "head", "at_head"]


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the schema to REVISION (default: head).

    \b
    Examples:
      vutf db upgrade
      vutf --database-url postgresql://vutf@db/vutf db upgrade
    """
    from vutf_cli.services import db as db_service

    app_ctx = get_app(ctx)
    status = db_service.upgrade(app_ctx.runtime(check_schema=False), revision)
    app_ctx.terminal.emit_object(status, fields=_STATUS_FIELDS)


@app.command()
def current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and the head revision.

    \b
    Examples:
      vutf db current
      vutf db current --json | jq -r .current
    """
    from vutf_cli.services import db as db_service

    app_ctx = get_app(ctx)
    status = db_service.current(app_ctx.runtime(check_schema=False))
    app_ctx.terminal.emit_object(status, fields=_STATUS_FIELDS)
