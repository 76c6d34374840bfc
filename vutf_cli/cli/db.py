"""`vutf db`: the schema (wraps Alembic), its status, and connectivity.

Every command parses, makes one service call (a downgrade two: plan, then
act) and renders.  Services are imported inside the commands so that
``vutf --help`` never imports SQLAlchemy or Alembic.  None of these commands
checks the schema first: they are how a schema gets fixed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.cli.context import AppContext, get_app
from vutf_cli.output_formats import OUTPUT_FORMATS

if TYPE_CHECKING:
    from vutf_cli.output import Column
    from vutf_cli.services.db import DowngradePlan, RenderedSql
    from vutf_cli.services.runtime_role import RuntimeRoleSql

app = typer.Typer(
    help=(
        "Manage the schema: migrations, status, connectivity.\n\n"
        "\b\nExamples:\n"
        "  vutf db upgrade\n"
        "  vutf db status\n"
        "  vutf db check --quiet || vutf db upgrade\n"
        "  createdb vutf && vutf --database-url postgresql://localhost/vutf db upgrade"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

_MIGRATION_FIELDS = ["database", "dialect", "previous", "current", "head", "at_head", "changed"]
_STATUS_FIELDS = ["database", "dialect", "current", "head", "at_head"]
_SQL_FIELDS = ["dialect", "revision_range", "sql"]
_ROLE_SQL_FIELDS = ["dialect", "role", "database_name", "sql"]
# How a database without any applied revision is named in messages.
BASE_LABEL = "base"

SqlOption = Annotated[
    bool,
    typer.Option(
        "--sql",
        help="Print the SQL instead of running it (offline: no database connection).",
    ),
]


def _revision_columns() -> list[Column]:
    from vutf_cli.output import Column

    return [
        Column("revision"),
        Column("down_revision"),
        Column("is_head"),
        Column("description"),
    ]


def _emit_sql(
    app_ctx: AppContext,
    rendered: RenderedSql | RuntimeRoleSql,
    fields: list[str] = _SQL_FIELDS,
) -> None:
    """The SQL as a plain script, or as a record when -o on the command line asks for one.

    A script whatever VUTF_OUTPUT or the config file say, so that
    `vutf db upgrade --sql > schema.sql` is SQL (docs/architecture.md §5.3).
    """
    terminal = app_ctx.terminal
    if app_ctx.raw_output_format(OUTPUT_FORMATS, prints="SQL") == "table":
        terminal.stdout.write(rendered.sql if rendered.sql.endswith("\n") else rendered.sql + "\n")
        terminal.stdout.flush()
    else:
        terminal.emit_object(rendered, fields=fields)


def _describe_plan(plan: DowngradePlan) -> str:
    lines = [
        f"about to downgrade {plan.database} from {plan.current} to {plan.destination}, undoing:"
    ]
    lines += [f"  {step.revision}  {step.description}" for step in plan.steps]
    if plan.drops_everything:
        rows = ", ".join(f"{name}: {count}" for name, count in plan.row_counts)
        lines.append(f"this drops every vutf table with all its rows ({rows})")
    else:
        lines.append("whatever these revisions created is dropped, with its data")
    return "\n".join(lines)


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[
        str, typer.Argument(metavar="REVISION", help="Target revision; with --sql also FROM:TO.")
    ] = "head",
    sql: SqlOption = False,
) -> None:
    """Upgrade the schema to REVISION (default: head).

    \b
    Examples:
      vutf db upgrade
      vutf --database-url postgresql://vutf@db/vutf db upgrade
      vutf db upgrade --sql > schema.sql
    """
    from vutf_cli.services import db as db_service

    app_ctx = get_app(ctx)
    if sql:
        _emit_sql(app_ctx, db_service.render_upgrade_sql(app_ctx.settings, revision))
        return
    result = db_service.upgrade(app_ctx.database(check_schema=False), revision)
    if result.changed:
        app_ctx.terminal.notice(
            f"upgraded from {result.previous or BASE_LABEL} to {result.current}"
        )
    else:
        app_ctx.terminal.notice(f"already at {result.current or BASE_LABEL}; nothing to do")
    app_ctx.terminal.emit_object(result, fields=_MIGRATION_FIELDS)


# ignore_unknown_options: a relative target such as -1 is a revision, not a flag.
@app.command(context_settings={"ignore_unknown_options": True})
def downgrade(
    ctx: typer.Context,
    revision: Annotated[
        str,
        typer.Argument(
            metavar="REVISION", help="Target revision: an id, -1, or base; with --sql also FROM:TO."
        ),
    ],
    sql: SqlOption = False,
) -> None:
    """Downgrade the schema to REVISION (asks first).

    Shows what will be undone, then asks; without a terminal, --yes is
    required.  Downgrading to base drops every vutf table with its data.
    With --sql, REVISION is counted from head (head:REVISION) unless
    FROM:TO is given, and nothing is changed.

    \b
    Examples:
      vutf db downgrade -1
      vutf --yes db downgrade base
      vutf db downgrade base --sql
    """
    from vutf_cli.services import db as db_service

    app_ctx = get_app(ctx)
    if sql:
        _emit_sql(app_ctx, db_service.render_downgrade_sql(app_ctx.settings, revision))
        return
    db = app_ctx.database(check_schema=False)
    plan = db_service.plan_downgrade(db, revision)
    if plan.steps:
        app_ctx.terminal.notice(_describe_plan(plan))
        app_ctx.confirm(f"Downgrade {plan.database} to {plan.destination}?")
    result = db_service.downgrade(db, plan)
    if result.changed:
        app_ctx.terminal.notice(
            f"downgraded from {result.previous} to {result.current or BASE_LABEL}"
        )
    else:
        app_ctx.terminal.notice(f"already at {result.current or BASE_LABEL}; nothing to do")
    app_ctx.terminal.emit_object(result, fields=_MIGRATION_FIELDS)


@app.command()
def current(ctx: typer.Context) -> None:
    """Show the database's schema revision and the head revision.

    The revision is null when the database has no vutf schema.

    \b
    Examples:
      vutf db current
      vutf db current --json | jq -r .current
    """
    from vutf_cli.services import db as db_service

    app_ctx = get_app(ctx)
    status = db_service.current(app_ctx.database(check_schema=False))
    app_ctx.terminal.emit_object(status, fields=_STATUS_FIELDS)


@app.command()
def history(ctx: typer.Context) -> None:
    """List the migration revisions, newest first.

    Reads the migration scripts only; no database is needed.

    \b
    Examples:
      vutf db history
      vutf db history -o csv
    """
    from vutf_cli.services import db as db_service

    app_ctx = get_app(ctx)
    app_ctx.terminal.emit_rows(db_service.history(), columns=_revision_columns())


@app.command()
def heads(ctx: typer.Context) -> None:
    """List the head revision(s) of the migration scripts.

    Reads the migration scripts only; no database is needed.

    \b
    Examples:
      vutf db heads
      vutf db heads --json | jq -r '.[0].revision'
    """
    from vutf_cli.services import db as db_service

    app_ctx = get_app(ctx)
    app_ctx.terminal.emit_rows(db_service.heads(), columns=_revision_columns())


@app.command()
def check(ctx: typer.Context) -> None:
    """Verify that the schema is at head and matches the models.

    Exits 0 when both hold, 8 when migrations are pending (run `vutf db
    upgrade`), 6 when the live schema differs from the models.

    \b
    Examples:
      vutf db check
      vutf db check --quiet || vutf db upgrade
    """
    from vutf_cli.services import db as db_service

    app_ctx = get_app(ctx)
    result = db_service.check(app_ctx.database(check_schema=False))
    app_ctx.terminal.notice(f"schema at head ({result.current}), no drift from the models")
    app_ctx.terminal.emit_object(result)


@app.command()
def status(ctx: typer.Context) -> None:
    """Show server, revision, row counts, pool and timeouts.

    The URL is shown with its password masked.  The default database is
    not created by looking: if it does not exist yet, a warning says so
    (exit 0, as `vutf doctor`).

    \b
    Examples:
      vutf db status
      vutf db status --json | jq .users_rows
    """
    from vutf_cli.services import db_status as db_service

    app_ctx = get_app(ctx)
    _say_uncreated_default(app_ctx, "its status is that of an empty database")
    app_ctx.terminal.emit_object(db_service.status(app_ctx.database(check_schema=False)))


@app.command()
def ping(ctx: typer.Context) -> None:
    """Make one round trip to the database and report its latency.

    Transient failures are retried until VUTF_DB_DEADLINE (seconds); a
    database still unreachable then exits 7.  A default database that does
    not exist yet is not created: a warning says so, nothing is printed
    (exit 0, as `vutf doctor`).

    \b
    Examples:
      vutf db ping
      VUTF_DB_DEADLINE=3 vutf db ping --json | jq .latency_ms
    """
    from vutf_cli.services import db_status as db_service

    app_ctx = get_app(ctx)
    if _say_uncreated_default(app_ctx, "nothing to ping"):
        return
    app_ctx.terminal.emit_object(db_service.ping(app_ctx.database(check_schema=False)))


def _say_uncreated_default(app_ctx: AppContext, consequence: str) -> bool:
    """Whether the target is the default database and it does not exist yet (then said so).

    As `vutf doctor` has it, that is healthy (exit 0: the first command that
    needs it creates it), but looking does not create it, and the line is
    shown even with -q: a missing VUTF_DATABASE_URL must not pass unnoticed.
    """
    from vutf_cli.services.db_status import uncreated_default

    path = uncreated_default(app_ctx.settings)
    if path is None:
        return False
    app_ctx.terminal.warning(
        f"the default database {path} is not created yet ({consequence}); "
        "the first command that needs it creates it"
    )
    return True


# -- the least-privilege runtime role ---------------------------------------------------
RoleArgument = Annotated[
    str,
    typer.Argument(
        metavar="ROLE", help="The PostgreSQL role vutf's day-to-day commands connect as."
    ),
]


@app.command("grant-runtime")
def grant_runtime(
    ctx: typer.Context,
    role: RoleArgument,
    create: Annotated[
        bool, typer.Option("--create", help="Create ROLE (NOLOGIN) if it does not exist.")
    ] = False,
    no_hard_delete: Annotated[
        bool,
        typer.Option(
            "--no-hard-delete",
            help="Leave out DELETE on users and api_keys (then `users delete --hard` is refused).",
        ),
    ] = False,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql", help="Print the GRANT script instead of running it (offline: no connection)."
        ),
    ] = False,
) -> None:
    """Give ROLE exactly what vutf needs at run time (PostgreSQL).

    \b
    users, api_keys   SELECT, INSERT, UPDATE, DELETE (soft deletes are UPDATEs;
                      DELETE is for `users delete --hard`: --no-hard-delete)
    audit_log         SELECT, INSERT only: never UPDATE, DELETE or TRUNCATE
    roles, user_roles SELECT, INSERT, UPDATE (removals are soft deletes)
    alembic_version   SELECT (the schema check)
    database, schema  CONNECT, USAGE; never CREATE or any other DDL

    Everything else ROLE held on these tables is revoked first.  ROLE must not
    be a superuser or own the tables (exit 4), nor keep more through PUBLIC
    or a membership (exit 4, nothing changed).  Run it as the owner of the
    tables (the role that ran `vutf db upgrade`); asks first, and without a
    terminal --yes is required.  vutf never handles role passwords: a role
    made with --create is NOLOGIN, and the DBA runs ALTER ROLE ... LOGIN
    PASSWORD (or grants ROLE to a login role).

    \b
    Examples:
      vutf --database-url postgresql://owner@db/vutf db grant-runtime vutf_app --yes
      vutf db grant-runtime vutf_app --create --sql > grant.sql   # review, then psql -f
    """
    from vutf_cli.services import runtime_role as db_service

    app_ctx = get_app(ctx)
    unkeyed = db_service.audit_key_warning(app_ctx.settings, role)
    if sql:
        rendered = db_service.render_runtime_grant_sql(
            app_ctx.settings, role, create=create, hard_delete=not no_hard_delete
        )
        _emit_sql(app_ctx, rendered, _ROLE_SQL_FIELDS)
        if unkeyed is not None:
            app_ctx.terminal.warning(unkeyed)
        return
    db_service.require_postgresql(app_ctx.settings, "grant-runtime")
    app_ctx.confirm(f"Grant vutf's runtime privileges to role {role!r}?")
    result = db_service.grant_runtime(
        app_ctx.database(check_schema=False), role, create=create, hard_delete=not no_hard_delete
    )
    app_ctx.terminal.notice(
        f"role {result.role!r} {'created and ' if result.created else ''}"
        f"granted vutf's runtime privileges on {result.database_name}"
    )
    if not result.can_login:
        app_ctx.terminal.notice(
            f"role {result.role!r} cannot log in; the DBA's step: "
            "ALTER ROLE <role> LOGIN PASSWORD '...' (or GRANT <role> TO a login role)"
        )
    if unkeyed is not None:
        app_ctx.terminal.warning(unkeyed)
    app_ctx.terminal.emit_object(result)


@app.command("revoke-runtime")
def revoke_runtime(
    ctx: typer.Context,
    role: RoleArgument,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql", help="Print the REVOKE script instead of running it (offline: no connection)."
        ),
    ] = False,
) -> None:
    """Take back what grant-runtime gave ROLE (PostgreSQL).

    The role itself is left alone.  The output lists what ROLE still holds on
    vutf's tables (through PUBLIC or memberships), normally nothing.  Asks
    first; without a terminal, --yes is required.

    \b
    Examples:
      vutf --yes db revoke-runtime vutf_app
      vutf db revoke-runtime vutf_app --sql
    """
    from vutf_cli.services import runtime_role as db_service

    app_ctx = get_app(ctx)
    if sql:
        _emit_sql(
            app_ctx, db_service.render_runtime_revoke_sql(app_ctx.settings, role), _ROLE_SQL_FIELDS
        )
        return
    db_service.require_postgresql(app_ctx.settings, "revoke-runtime")
    app_ctx.confirm(f"Revoke vutf's runtime privileges from role {role!r}?")
    result = db_service.revoke_runtime(app_ctx.database(check_schema=False), role)
    app_ctx.terminal.notice(f"role {result.role!r}: vutf's runtime privileges revoked")
    app_ctx.terminal.emit_object(result)
