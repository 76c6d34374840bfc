"""`vutf roles`: create, list, show, update, delete and restore roles; list their members;
prune expired assignments.

Each command parses its arguments, makes one call into
:mod:`vutf_cli.services.roles` (or :mod:`vutf_cli.services.role_assignments`
for ``prune-expired``) and renders the result: data on stdout, everything
else on stderr.  The decisions (built-in roles, what delete does to the
assignments, the idempotent forms) are in the docstrings of those services.
Giving roles to users is ``vutf users add-role | remove-role``
(:mod:`vutf_cli.cli.user_roles`).

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run (names imported only for type checking are quoted).
"""

from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.cli.context import AppContext, get_app

if TYPE_CHECKING:
    from vutf_cli.domain.roles import AssignmentView, RoleView
    from vutf_cli.output import Column
    from vutf_cli.services.role_assignments import AssignmentOutcome

__all__ = ["app", "assignment_columns", "emit_assignments", "emit_outcomes"]

app = typer.Typer(
    help=(
        "Manage roles: named sets of API-key scopes that users hold.\n\n"
        "\b\nExamples:\n"
        "  vutf roles list\n"
        "  vutf users add-role alice ROLE"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

RoleArgument = Annotated[str, typer.Argument(metavar="ROLE", help="Role name (any case) or id.")]
Scopes = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        metavar="SCOPE",
        help="A scope the role grants (repeat, or comma-separate); the API keys' scopes.",
    ),
]
Description = Annotated[
    str | None, typer.Option("--description", metavar="TEXT", help="What the role is for.")
]


def _fields(view_class: type) -> list[str]:
    from dataclasses import fields

    return [f.name for f in fields(view_class)]


def role_columns() -> "list[Column]":
    """Every field of a role; the table's choice is ``output.columns.ROLE_TABLE``."""
    from vutf_cli.domain.roles import RoleView
    from vutf_cli.output.columns import ROLE_TABLE

    return ROLE_TABLE.columns(_fields(RoleView))


def assignment_columns() -> "list[Column]":
    from vutf_cli.domain.roles import AssignmentView
    from vutf_cli.output.columns import ASSIGNMENT_TABLE

    return ASSIGNMENT_TABLE.columns(_fields(AssignmentView))


def emit_role(app_ctx: AppContext, role: "RoleView") -> None:
    from vutf_cli.domain.roles import RoleView

    app_ctx.terminal.emit_object(role, fields=_fields(RoleView))


def emit_assignments(app_ctx: AppContext, rows: "list[AssignmentView]", *, empty: str) -> None:
    app_ctx.terminal.emit_rows(rows, columns=assignment_columns(), empty_notice=empty)


def emit_outcomes(app_ctx: AppContext, rows: "list[AssignmentOutcome]", *, empty: str) -> None:
    """What add-role, remove-role and prune-expired did (or would do), one row per user."""
    from vutf_cli.output.columns import ROLE_CHANGE_TABLE
    from vutf_cli.services.role_assignments import AssignmentOutcome

    columns = ROLE_CHANGE_TABLE.columns(_fields(AssignmentOutcome))
    app_ctx.terminal.emit_rows(rows, columns=columns, empty_notice=empty)


# -- commands ----------------------------------------------------------------------------
@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="2-64 characters of A-Z a-z 0-9 _ -.")
    ],
    scope: Scopes = None,
    description: Description = None,
    if_not_exists: Annotated[
        bool,
        typer.Option("--if-not-exists", help="If NAME exists, report that role unchanged; exit 0."),
    ] = False,
) -> None:
    """Create a role granting one or more scopes.

    \b
    Examples:
      vutf roles create auditor --scope read --description 'Reads everything'
      vutf roles create deployer --scope targets:write,sessions:write --if-not-exists
    """
    from vutf_cli.services import roles as service

    app_ctx = get_app(ctx)
    result = service.create_role(
        app_ctx.database(),
        name=name,
        scopes=scope or [],
        description=description,
        if_not_exists=if_not_exists,
    )
    terminal = app_ctx.terminal
    if result.created:
        terminal.success(f"created role '{result.role.name}'")
    else:
        terminal.notice(f"role '{result.role.name}' already exists; left unchanged")
        if result.differences:
            terminal.warning(
                f"the existing role '{result.role.name}' differs from the request in: "
                + ", ".join(result.differences)
            )
    emit_role(app_ctx, result.role)


@app.command("list")
def list_roles(
    ctx: typer.Context,
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Deleted and live roles together.")
    ] = False,
) -> None:
    """List roles, with how many users hold each now.

    Every role is listed: roles are few.

    \b
    Examples:
      vutf roles list
      vutf roles list --json | jq -r '.[].name'
    """
    from vutf_cli.services import roles as service

    app_ctx = get_app(ctx)
    rows = service.list_roles(app_ctx.database(), include_deleted=include_deleted)
    app_ctx.terminal.emit_rows(rows, columns=role_columns(), empty_notice="no roles found")


@app.command()
def show(ctx: typer.Context, role_name: RoleArgument) -> None:
    """Show one role (a deleted one too, marked as such).

    \b
    Examples:
      vutf roles show key-manager
      vutf roles show viewer --json | jq -r '.scopes[]'
    """
    from vutf_cli.services import roles as service

    app_ctx = get_app(ctx)
    view = service.show_role(app_ctx.database(), role_name)
    if view.is_deleted:
        app_ctx.terminal.notice(f"role '{view.name}' is deleted")
    emit_role(app_ctx, view)


@app.command()
def update(
    ctx: typer.Context,
    role_name: RoleArgument,
    scope: Scopes = None,
    description: Annotated[
        str | None,
        typer.Option("--description", metavar="TEXT", help='New description ("" clears it).'),
    ] = None,
    rename: Annotated[
        str | None, typer.Option("--rename", metavar="NAME", help="New name.")
    ] = None,
    expected_version: Annotated[
        int | None,
        typer.Option(
            "--expected-version",
            metavar="N",
            help="Only change the role if it is still at version N (else exit 4).",
        ),
    ] = None,
) -> None:
    """Change a role (--scope replaces its scopes).

    Built-in roles cannot be changed.

    Holders' API keys are narrowed or widened at their next verification.

    \b
    Examples:
      vutf roles update auditor --scope read --scope sessions:write
      vutf roles update deployer --rename release-manager --expected-version 2
    """
    from vutf_cli.services import roles as service

    app_ctx = get_app(ctx)
    result = service.update_role(
        app_ctx.database(),
        role_name,
        scopes=scope,
        description=description,
        new_name=rename,
        expected_version=expected_version,
    )
    if result.changed:
        app_ctx.terminal.success(f"updated role '{result.role.name}': {', '.join(result.fields)}")
    else:
        app_ctx.terminal.notice(f"role '{result.role.name}' already so; nothing changed")
    emit_role(app_ctx, result.role)


@app.command()
def delete(
    ctx: typer.Context,
    role_name: RoleArgument,
    if_exists: Annotated[
        bool,
        typer.Option(
            "--if-exists",
            help="If ROLE does not exist, say so on stderr and exit 0 (nothing is written).",
        ),
    ] = False,
) -> None:
    """Delete a role (restorable) and end its assignments.

    Built-in roles stay.

    Asks for confirmation on a terminal; without one, --yes is required.

    \b
    Examples:
      vutf roles delete deployer
      vutf --yes roles delete old-role --if-exists
    """
    from vutf_cli.services import roles as service

    app_ctx = get_app(ctx)
    app_ctx.confirm(f"Delete role '{role_name}' and take it from every user holding it?")
    result = service.delete_role(app_ctx.database(), role_name, if_exists=if_exists)
    if result is None:
        app_ctx.terminal.notice(
            f"role '{role_name}' does not exist; nothing to delete (--if-exists)"
        )
        return
    app_ctx.terminal.success(
        f"deleted role '{result.role.name}'; ended {result.ended_assignments} assignment(s)"
    )
    emit_role(app_ctx, result.role)


@app.command()
def restore(ctx: typer.Context, role_name: RoleArgument) -> None:
    """Restore a deleted role (its ended assignments stay ended).

    \b
    Examples:
      vutf roles restore deployer
    """
    from vutf_cli.services import roles as service

    app_ctx = get_app(ctx)
    result = service.restore_role(app_ctx.database(), role_name)
    if result.changed:
        app_ctx.terminal.success(f"restored role '{result.role.name}'")
    else:
        app_ctx.terminal.notice(f"role '{result.role.name}' is not deleted; nothing changed")
    emit_role(app_ctx, result.role)


@app.command()
def members(
    ctx: typer.Context,
    role_name: RoleArgument,
    include_expired: Annotated[
        bool,
        typer.Option("--include-expired", help="Also assignments past their expiry (not pruned)."),
    ] = False,
) -> None:
    """List the users who hold a role now.

    \b
    Examples:
      vutf roles members key-manager
      vutf roles members key-manager --json | jq -r '.[].username'
    """
    from vutf_cli.services import roles as service

    app_ctx = get_app(ctx)
    rows = service.role_members(app_ctx.database(), role_name, include_expired=include_expired)
    emit_assignments(app_ctx, rows, empty=f"no users hold role '{role_name}'")


@app.command("prune-expired")
def prune_expired(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be pruned; write nothing.")
    ] = False,
) -> None:
    """Remove assignments whose expiry has passed.

    They had already stopped counting.

    \b
    Examples:
      vutf roles prune-expired --dry-run
      vutf roles prune-expired -o json
    """
    from vutf_cli.services import role_assignments as service

    app_ctx = get_app(ctx)
    rows = service.prune_expired(app_ctx.database(), dry_run=dry_run)
    verb = "would prune" if dry_run else "pruned"
    app_ctx.terminal.success(f"{verb} {len(rows)} expired assignment(s)")
    emit_outcomes(app_ctx, rows, empty="no expired assignments")
