"""`vutf users set-password` and `vutf users check-password`.

Registered on the `vutf users` group by :mod:`vutf_cli.cli.users`, in the
order the help lists the commands.  The password comes from a hidden prompt,
``--password-stdin`` or ``--password-file``, never from argv; the service
decisions are in :mod:`vutf_cli.services.user_passwords`.

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run, and string annotations would be compiled and
evaluated there, twice each (names imported only for type checking are
quoted instead).
"""

import typer

from vutf_cli.cli.context import get_app
from vutf_cli.cli.user_options import (
    ExpectedVersion,
    PasswordFile,
    PasswordStdin,
    UserArgument,
    emit_user,
    read_password,
)

__all__ = ["check_password", "set_password"]


def set_password(
    ctx: typer.Context,
    user: UserArgument,
    password_stdin: PasswordStdin = False,
    password_file: PasswordFile = None,
    expected_version: ExpectedVersion = None,
) -> None:
    """Set a user's password (at least 15 characters by default; no other rules).

    \b
    Examples:
      vutf users set-password alice
      vutf users set-password alice --password-stdin < new-password.txt
      vutf users set-password alice --password-file /run/secrets/alice
    """
    from vutf_cli.services import user_passwords as service

    app_ctx = get_app(ctx)
    password = read_password(
        stdin=password_stdin, file=password_file, confirm=True, what="new password"
    )
    result = service.set_password(
        app_ctx.database(), user, password, expected_version=expected_version
    )
    app_ctx.terminal.success(f"password changed for user '{result.username}'")
    emit_user(app_ctx, result)


def check_password(
    ctx: typer.Context,
    user: UserArgument,
    password_stdin: PasswordStdin = False,
    password_file: PasswordFile = None,
) -> None:
    """Check a user's password: exit 0 if it matches, 5 if not.

    An unknown, inactive or deleted user gets the same answer (and takes as
    long) as a wrong password.  Every attempt appends one user.login audit
    row with the reason (vutf audit list --action user.login).  Nothing is
    written to stdout.

    \b
    Examples:
      vutf users check-password alice
      printf '%s' "$PW" | vutf users check-password alice --password-stdin && echo ok
    """
    from vutf_cli.services import user_passwords as service

    app_ctx = get_app(ctx)
    password = read_password(stdin=password_stdin, file=password_file, confirm=False)
    result = service.check_password(app_ctx.database(), user, password)
    app_ctx.terminal.success(f"the password matches for user '{result.username}'")
