"""What the `vutf users` commands share: the USER argument, the password and version
options, and how a user is rendered.

Passwords come from a hidden prompt with confirmation (on a terminal),
``--password-stdin`` (all of stdin, one trailing newline removed) or
``--password-file``; never from argv.

No ``from __future__ import annotations``, as in the command modules that use
these (see :mod:`vutf_cli.cli.users`): names imported only for type checking
are quoted instead.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vutf_cli.cli.context import AppContext, read_secret

if TYPE_CHECKING:
    from vutf_cli.domain.user_view import UserView
    from vutf_cli.output import Column

__all__ = [
    "ExpectedVersion",
    "PasswordFile",
    "PasswordStdin",
    "UserArgument",
    "emit_user",
    "read_password",
    "user_columns",
    "user_fields",
    "user_record",
]

UserArgument = Annotated[
    str, typer.Argument(metavar="USER", help="Username, email address or user id.")
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from stdin (all of it; one trailing newline is removed).",
    ),
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        metavar="FILE",
        help="Read the password from FILE (one trailing newline is removed).",
        dir_okay=False,
    ),
]
ExpectedVersion = Annotated[
    int | None,
    typer.Option(
        "--expected-version",
        metavar="N",
        help="Only change the user if it is still at version N (else exit 4).",
    ),
]


# -- rendering --------------------------------------------------------------------------
def user_fields() -> list[str]:
    from dataclasses import fields

    # Not domain.views: that module creates every view class, `users list` needs one.
    from vutf_cli.domain.user_view import UserView

    return [f.name for f in fields(UserView)]


def user_columns(*, with_hash: bool = False) -> "list[Column]":
    from vutf_cli.output import Column
    from vutf_cli.output.columns import USER_TABLE

    # The table's columns and what it drops first are USER_TABLE's.
    columns = USER_TABLE.columns(user_fields())
    if with_hash:
        columns.append(Column("password_hash", in_table=False))
    return columns


def user_record(user: "UserView", **extra: Any) -> dict[str, Any]:
    """Every field of ``user`` (plus ``extra``) as one flat mapping."""
    return {**{name: getattr(user, name) for name in user_fields()}, **extra}


def emit_user(app_ctx: AppContext, user: "UserView") -> None:
    """What a mutation of a user prints after its summary line (the record for -o json)."""
    app_ctx.emit_change(user, fields=user_fields())


def read_password(
    *,
    stdin: bool,
    file: Path | None,
    confirm: bool,
    what: str = "password",
    app_ctx: AppContext | None = None,
) -> str:
    """The password; with ``app_ctx``, a new one typed at a prompt meets the policy
    (the configured minimum length, :meth:`Passwords.check_strength`) before it is
    asked for a second time."""
    check = None
    if app_ctx is not None:
        check = app_ctx.database(check_schema=False).passwords.check_strength
    return read_secret(what=what, from_stdin=stdin, from_file=file, confirm=confirm, check=check)
