"""`vutf users`: create, list, show, change, delete, import and export users.

The group, and the commands that change a user's life: create, update,
activate, deactivate, verify, delete, restore.  Each command parses its
arguments, makes one call into :mod:`vutf_cli.services.users` and renders
the result: data on stdout, everything else on stderr.  The decisions behind
the details (idempotency, what delete does to keys) are written down in the
docstrings of that service.  What the commands share (the USER argument, the
password options, how a user is rendered) is in
:mod:`vutf_cli.cli.user_options`; `list` and `show`
(:mod:`vutf_cli.cli.user_queries`), `set-password` and `check-password`
(:mod:`vutf_cli.cli.user_passwords`), and `export` and `import`
(:mod:`vutf_cli.cli.user_transfer`) have modules of their own and are
registered here, in the order the help lists the commands.  The decisions
that belong to the command line:

* Passwords come from a hidden prompt with confirmation (on a terminal),
  ``--password-stdin`` (all of stdin, one trailing newline removed) or
  ``--password-file``; ``create`` can also ``--generate-password``, which is
  printed once, on stdout (a ``password`` row or JSON field), with a note on
  stderr; if stdout cannot take it (closed pipe, full disk) the command
  exits 9 saying the user was created (:mod:`vutf_cli.cli.secret_delivery`).
  Never from argv.
* ``delete`` (soft or ``--hard``) asks for confirmation on a terminal and
  needs ``--yes`` otherwise.

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run, and string annotations would be compiled and
evaluated there, twice each (names imported only for type checking are
quoted instead).
"""

from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.cli.context import AppContext, get_app
from vutf_cli.cli.secret_delivery import stdout_failure
from vutf_cli.cli.user_options import (
    ExpectedVersion,
    PasswordFile,
    PasswordStdin,
    UserArgument,
    emit_user,
    read_password,
    user_record,
)
from vutf_cli.cli.user_passwords import check_password, set_password, unlock
from vutf_cli.cli.user_queries import list_users, show
from vutf_cli.cli.user_roles import add_role, remove_role
from vutf_cli.cli.user_transfer import export, import_users
from vutf_cli.errors import InvalidInput, SecretNotDelivered

if TYPE_CHECKING:
    from vutf_cli.domain.user_results import CreatedUser
    from vutf_cli.domain.user_view import UserView

app = typer.Typer(
    help=(
        "Manage users: create, list, change, delete, import, export.\n\n"
        "\b\nExamples:\n"
        "  vutf users create alice --email alice@example.com\n"
        "  vutf users list --search acme\n"
        "  vutf users deactivate alice\n"
        "  vutf users export -o jsonl --output-file users.jsonl"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


# -- commands -----------------------------------------------------------------------
@app.command()
def create(
    ctx: typer.Context,
    username: Annotated[
        str, typer.Argument(metavar="USERNAME", help="3-100 characters of A-Z a-z 0-9 _ -.")
    ],
    email: Annotated[
        str | None,
        typer.Option(
            "--email", metavar="EMAIL", help="Email address (required; asked for on a terminal)."
        ),
    ] = None,
    full_name: Annotated[
        str | None, typer.Option("--full-name", metavar="NAME", help="Display name.")
    ] = None,
    superuser: Annotated[bool, typer.Option("--superuser", help="Make a superuser.")] = False,
    verified: Annotated[
        bool, typer.Option("--verified", help="Mark the email address verified.")
    ] = False,
    password_stdin: PasswordStdin = False,
    password_file: PasswordFile = None,
    generate_password: Annotated[
        bool,
        typer.Option(
            "--generate-password",
            help="Generate a strong random password and print it once.",
        ),
    ] = False,
    if_not_exists: Annotated[
        bool,
        typer.Option(
            "--if-not-exists",
            help="If USERNAME exists, report that user unchanged and exit 0.",
        ),
    ] = False,
) -> None:
    """Create a user.

    The password comes from a hidden prompt (typed twice) on a terminal,
    from --password-stdin or --password-file, or is generated with
    --generate-password: then it is printed once, on stdout (JSON: the
    "password" field); store it right away.

    \b
    Examples:
      vutf users create alice --email alice@example.com
      printf '%s' "$PW" | vutf users create bob --email bob@example.com --password-stdin
      vutf users create ci-bot --email ci@example.com --generate-password --json
      vutf users create alice --email alice@example.com --generate-password --if-not-exists
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    if generate_password and (password_stdin or password_file is not None):
        raise InvalidInput("--generate-password cannot be combined with a password to read")
    email = app_ctx.required_value(email, option="--email", label="Email address")
    if if_not_exists:
        # Looked up before any password is asked for or read (as keys create does).
        found = service.existing_user(
            app_ctx.database(),
            username=username,
            email=email,
            full_name=full_name,
            is_superuser=superuser,
            is_verified=verified,
        )
        if found is not None:
            _report_existing_user(app_ctx, found)
            return
    password = (
        None
        if generate_password
        else read_password(stdin=password_stdin, file=password_file, confirm=True, app_ctx=app_ctx)
    )
    result = service.create_user(
        app_ctx.database(),
        username=username,
        email=email,
        password=password,
        generate=generate_password,
        full_name=full_name,
        is_superuser=superuser,
        is_verified=verified,
        if_not_exists=if_not_exists,
    )
    terminal = app_ctx.terminal
    if not result.created:  # created meanwhile by someone else
        _report_existing_user(app_ctx, result)
        return
    terminal.success(f"created user '{result.user.username}'")
    if result.password is None:
        emit_user(app_ctx, result.user)
        return
    record = user_record(result.user, password=result.password)
    reason = stdout_failure(terminal, lambda: terminal.emit_object(record))
    if reason is not None:
        # The password is nowhere else: the user exists, but nobody can log in as it.
        name = result.user.username
        raise SecretNotDelivered(
            f"user '{name}' was created but its generated password could not be written "
            f"to stdout: {reason}",
            hint=f"set a new password: vutf users set-password {name}",
        )
    terminal.warning("the generated password is shown only this once: store it now")


def _report_existing_user(app_ctx: AppContext, result: "CreatedUser") -> None:
    terminal = app_ctx.terminal
    terminal.notice(f"user '{result.user.username}' already exists; left unchanged")
    if result.differences:
        terminal.warning(
            f"the existing user '{result.user.username}' differs from the request in: "
            + ", ".join(result.differences)
        )
    emit_user(app_ctx, result.user)


app.command("list")(list_users)
app.command()(show)


@app.command()
def update(
    ctx: typer.Context,
    user: UserArgument,
    email: Annotated[
        str | None, typer.Option("--email", metavar="EMAIL", help="New email address.")
    ] = None,
    full_name: Annotated[
        str | None,
        typer.Option("--full-name", metavar="NAME", help='New display name ("" clears it).'),
    ] = None,
    superuser: Annotated[
        bool | None,
        typer.Option("--superuser/--no-superuser", help="Grant or take away superuser."),
    ] = None,
    expected_version: ExpectedVersion = None,
) -> None:
    """Change a user's email, full name or superuser flag.

    \b
    Examples:
      vutf users update alice --email alice@new.example.com
      vutf users update alice --no-superuser --expected-version 3
      vutf users update alice --full-name ""
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    result = service.update_user(
        app_ctx.database(),
        user,
        email=email,
        full_name=full_name,
        is_superuser=superuser,
        expected_version=expected_version,
    )
    if result.changed:
        app_ctx.terminal.success(
            f"updated user '{result.user.username}': {', '.join(result.fields)}"
        )
    else:
        app_ctx.terminal.notice(f"user '{result.user.username}' already so; nothing changed")
    emit_user(app_ctx, result.user)


app.command("set-password")(set_password)
app.command("check-password")(check_password)
app.command()(unlock)


IfExists = Annotated[
    bool,
    typer.Option(
        "--if-exists",
        help="If USER does not exist, say so on stderr and exit 0 (nothing is written).",
    ),
]


def _report_missing(app_ctx: AppContext, user: str, what: str) -> None:
    # --if-exists: nothing to do is success; stdout stays empty (there is no user).
    app_ctx.terminal.notice(f"user '{user}' does not exist; nothing to {what} (--if-exists)")


def _report_change(
    app_ctx: AppContext, user: "UserView", changed: bool, done: str, state: str
) -> None:
    if changed:
        app_ctx.terminal.success(f"{done} user '{user.username}'")
    else:
        app_ctx.terminal.notice(f"user '{user.username}' is already {state}; nothing changed")
    emit_user(app_ctx, user)


@app.command()
def activate(ctx: typer.Context, user: UserArgument) -> None:
    """Activate a user (an active user is left as it is).

    \b
    Examples:
      vutf users activate alice
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    result = service.activate_user(app_ctx.database(), user)
    _report_change(app_ctx, result.user, result.changed, "activated", "active")


@app.command()
def deactivate(ctx: typer.Context, user: UserArgument, if_exists: IfExists = False) -> None:
    """Deactivate a user: no logins; their API keys stop working.

    An inactive user is left as it is (exit 0).

    \b
    Examples:
      vutf users deactivate alice
      vutf users deactivate old-bot --if-exists
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    result = service.deactivate_user(app_ctx.database(), user, if_exists=if_exists)
    if result is None:
        _report_missing(app_ctx, user, "deactivate")
        return
    _report_change(app_ctx, result.user, result.changed, "deactivated", "inactive")


@app.command()
def verify(ctx: typer.Context, user: UserArgument) -> None:
    """Mark a user's email address verified.

    \b
    Examples:
      vutf users verify alice
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    result = service.verify_user(app_ctx.database(), user)
    _report_change(app_ctx, result.user, result.changed, "verified", "verified")


@app.command()
def delete(
    ctx: typer.Context,
    user: UserArgument,
    hard: Annotated[
        bool,
        typer.Option("--hard", help="Remove the row and the user's API keys for good."),
    ] = False,
    if_exists: IfExists = False,
) -> None:
    """Delete a user: soft (restorable) or --hard.

    A soft delete revokes their API keys; --hard removes the row and the keys.

    Asks for confirmation on a terminal; without one, --yes is required.
    A soft-deleted username or email can be registered again.  Deleting a
    deleted user again (without --hard) changes nothing and exits 0.

    \b
    Examples:
      vutf users delete alice
      vutf users delete alice --hard --yes
      vutf --yes users delete old-bot --if-exists
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    if hard:
        app_ctx.confirm(f"Permanently delete user '{user}' and all their API keys?")
    else:
        app_ctx.confirm(f"Delete user '{user}' and revoke their API keys?")
    result = service.delete_user(app_ctx.database(), user, hard=hard, if_exists=if_exists)
    if result is None:
        _report_missing(app_ctx, user, "delete")
        return
    name = result.user.username
    if not result.changed:
        app_ctx.terminal.notice(
            f"user '{name}' is already deleted; nothing changed (--hard removes it for good)"
        )
    elif result.hard:
        app_ctx.terminal.success(
            f"removed user '{name}' for good, with {result.api_keys} API key(s)"
        )
    else:
        app_ctx.terminal.success(f"deleted user '{name}'; revoked {result.api_keys} API key(s)")
    emit_user(app_ctx, result.user)


@app.command()
def restore(ctx: typer.Context, user: UserArgument, if_exists: IfExists = False) -> None:
    """Restore a soft-deleted user (revoked keys stay revoked).

    A live user is left as it is (exit 0).

    \b
    Examples:
      vutf users restore alice
      vutf users restore 6f1c2e9a-3b4d-4e5f-8a9b-0c1d2e3f4a5b
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    result = service.restore_user(app_ctx.database(), user, if_exists=if_exists)
    if result is None:
        _report_missing(app_ctx, user, "restore")
        return
    _report_change(app_ctx, result.user, result.changed, "restored", "live (not deleted)")


app.command()(export)
app.command("import")(import_users)
app.command("add-role")(add_role)
app.command("remove-role")(remove_role)
