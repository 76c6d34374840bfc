"""`vutf users set-password`, `vutf users check-password` and `vutf users unlock`.

Registered on the `vutf users` group by :mod:`vutf_cli.cli.users`, in the
order the help lists the commands.  The password comes from a hidden prompt,
``--password-stdin`` or ``--password-file``, never from argv; the service
decisions are in :mod:`vutf_cli.services.user_passwords` and, for lockout,
:mod:`vutf_cli.services.lockout`.

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

__all__ = ["check_password", "set_password", "unlock"]


def set_password(
    ctx: typer.Context,
    user: UserArgument,
    password_stdin: PasswordStdin = False,
    password_file: PasswordFile = None,
    expected_version: ExpectedVersion = None,
) -> None:
    """Set a user's password (a minimum length is the only rule).

    The minimum is the setting VUTF_MIN_PASSWORD_LENGTH (characters after
    NFKC normalization).  At a prompt, a password that is too short is
    refused, with the minimum, before it is asked for again to confirm, and
    asked for again (three tries in all).

    \b
    Examples:
      vutf users set-password alice
      vutf users set-password alice --password-stdin < new-password.txt
      vutf users set-password alice --password-file /run/secrets/alice
    """
    from vutf_cli.services import user_passwords as service

    app_ctx = get_app(ctx)
    password = read_password(
        stdin=password_stdin, file=password_file, confirm=True, what="new password", app_ctx=app_ctx
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

    An unknown, inactive, locked or deleted user gets the same answer (and
    takes as long) as a wrong password.  Every attempt appends one user.login
    audit row with the reason (vutf audit list --action user.login).  After
    VUTF_LOCKOUT_THRESHOLD failures (default 5) the user is locked for
    VUTF_LOCKOUT_DURATION seconds, even for the right password (vutf users
    unlock ends it).  Nothing is written to stdout.

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


def unlock(ctx: typer.Context, user: UserArgument) -> None:
    """End a user's lockout and clear their failed-attempt count.

    A user who is not locked and has no failed attempts is left as it is
    (exit 0, with a notice).

    \b
    Examples:
      vutf users unlock alice
    """
    from vutf_cli.services import lockout as service

    app_ctx = get_app(ctx)
    result = service.unlock_user(app_ctx.database(), user)
    name = result.user.username
    if not result.changed:
        app_ctx.terminal.notice(f"user '{name}' is not locked; nothing changed")
    elif "locked_until" in result.fields:
        app_ctx.terminal.success(f"unlocked user '{name}'")
    else:
        app_ctx.terminal.success(f"user '{name}' was not locked; cleared its failed attempts")
    emit_user(app_ctx, result.user)
