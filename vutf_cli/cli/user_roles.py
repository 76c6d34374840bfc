"""`vutf users add-role` and `vutf users remove-role`: giving roles to users and taking them.

Registered on the `vutf users` group by :mod:`vutf_cli.cli.users`.  One role,
one or more users (arguments before ROLE, or ``--from-file``, one user a
line); all or nothing, ``--dry-run`` to see what would happen.  The decisions
are in :mod:`vutf_cli.services.role_assignments`.

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.cli.context import AppContext, get_app
from vutf_cli.cli.roles import emit_outcomes
from vutf_cli.errors import InvalidInput
from vutf_cli.input_documents import read_document

if TYPE_CHECKING:
    from vutf_cli.services.role_assignments import AssignmentOutcome, Target

__all__ = ["add_role", "remove_role", "show_permissions"]

Users = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[USER]... ROLE",
        help="Users (username, email or id), then the role; with --from-file, only the role.",
        show_default=False,
    ),
]
FromFile = Annotated[
    Path | None,
    typer.Option(
        "--from-file",
        metavar="FILE",
        help="Read the users from FILE, one a line (# comments and blank lines skipped).",
        dir_okay=False,
    ),
]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Check everything and show what would happen; write nothing."),
]


def _targets(words: list[str] | None, from_file: Path | None) -> "tuple[list[Target], str]":
    """The users and the role from the arguments (and the file)."""
    from vutf_cli.services.role_assignments import Target, targets_from_text

    words = list(words or [])
    if not words:
        raise InvalidInput("missing ROLE", hint="vutf users add-role USER... ROLE")
    role = words.pop()
    targets = [Target(word) for word in words]
    if from_file is not None:
        try:
            text = read_document(from_file).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"cannot read {from_file}: {exc}") from None
        targets += targets_from_text(text, str(from_file))
    if not targets:
        raise InvalidInput("no user given", hint="name users before ROLE, or use --from-file")
    return targets, role


def _report(app_ctx: AppContext, rows: "list[AssignmentOutcome]", role: str, dry_run: bool) -> None:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) or "nothing"
    prefix = "dry run, nothing written: would be " if dry_run else ""
    app_ctx.terminal.success(f"role '{role}': {prefix}{summary}")
    emit_outcomes(app_ctx, rows, empty="no users")


def add_role(
    ctx: typer.Context,
    users: Users = None,
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", metavar="DURATION", help="End after DURATION (7d, 12h)."),
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", metavar="TIME", help="End at TIME (ISO 8601; no zone = UTC)."),
    ] = None,
    from_file: FromFile = None,
    dry_run: DryRun = False,
    if_not_exists: Annotated[
        bool,
        typer.Option("--if-not-exists", help="Leave users who already hold ROLE as they are."),
    ] = False,
) -> None:
    """Give a role to one or more users (all or nothing).

    The role may be given until an expiry.

    The role stops counting at its expiry, with no job running.

    \b
    Examples:
      vutf users add-role bob key-manager --expires-in 7d
      vutf users add-role alice bob carol viewer
      vutf users add-role --from-file team.txt viewer --dry-run
    """
    from vutf_cli.services import role_assignments as service

    app_ctx = get_app(ctx)
    targets, role = _targets(users, from_file)
    rows = service.add_role(
        app_ctx.database(),
        targets,
        role,
        expires_in=expires_in,
        expires_at=expires_at,
        if_not_exists=if_not_exists,
        dry_run=dry_run,
    )
    _report(app_ctx, rows, role, dry_run)


def remove_role(
    ctx: typer.Context,
    users: Users = None,
    from_file: FromFile = None,
    dry_run: DryRun = False,
    if_exists: Annotated[
        bool,
        typer.Option("--if-exists", help="Skip users who do not hold ROLE (exit 0)."),
    ] = False,
) -> None:
    """Take a role from one or more users (all or nothing).

    Their keys narrow at once.

    \b
    Examples:
      vutf users remove-role bob key-manager
      vutf users remove-role --from-file leavers.txt viewer --if-exists
    """
    from vutf_cli.services import role_assignments as service

    app_ctx = get_app(ctx)
    targets, role = _targets(users, from_file)
    rows = service.remove_role(
        app_ctx.database(), targets, role, if_exists=if_exists, dry_run=dry_run
    )
    _report(app_ctx, rows, role, dry_run)


def show_permissions(app_ctx: AppContext, user: str) -> None:
    """`users show --permissions`: each effective scope, the roles granting it, until when."""
    from vutf_cli.output.columns import PERMISSION_TABLE
    from vutf_cli.services.permissions import user_permissions

    found = user_permissions(app_ctx.database(), user)
    terminal = app_ctx.terminal
    rows = [
        {
            "username": found.username,
            "scope": s.scope,
            "sources": list(s.sources),
            "expires_at": s.expires_at,
        }
        for s in found.sources
    ]
    if terminal.output_format != "json":  # a row per scope; json: one object
        columns = PERMISSION_TABLE.columns(["username", "scope", "sources", "expires_at"])
        terminal.emit_rows(
            rows, columns=columns, empty_notice=f"user '{found.username}' holds no scopes"
        )
        return
    terminal.emit_object(
        {
            "user_id": found.user_id,
            "username": found.username,
            "is_superuser": found.is_superuser,
            "scopes": list(found.scopes),
            "sources": rows,
            "as_of": found.as_of,
        }
    )
