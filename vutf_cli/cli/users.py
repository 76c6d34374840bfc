"""`vutf users`: create, list, show, change, delete, import and export users.

Each command parses its arguments, makes one call into
:mod:`vutf_cli.services.users` and renders the result: data on stdout,
everything else on stderr.  The decisions behind the details (sorting,
paging, idempotency, what delete does to keys, the import columns) are
written down in the docstrings of :mod:`vutf_cli.services.users` and
:mod:`vutf_cli.services.user_import`.  Those that belong to the command line:

* Passwords come from a hidden prompt with confirmation (on a terminal),
  ``--password-stdin`` (all of stdin, one trailing newline removed) or
  ``--password-file``; ``create`` can also ``--generate-password``, which is
  printed once, on stdout (a ``password`` row or JSON field), with a note on
  stderr.  Never from argv.
* ``list`` prints the cursor of the next page on stderr as ``next cursor:
  ...``, even with ``--quiet`` (a script paging through needs it), and never
  on stdout, which stays a clean document.
* ``delete`` (soft or ``--hard``) asks for confirmation on a terminal and
  needs ``--yes`` otherwise.
* ``export`` writes json when the output format is ``table`` (a table is no
  export format); ``-o jsonl`` / ``-o csv`` choose the others.

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run, and string annotations would be compiled and
evaluated there, twice each (names imported only for type checking are
quoted instead).
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vutf_cli.cli.context import AppContext, get_app, read_secret
from vutf_cli.errors import InvalidInput, VutfError

if TYPE_CHECKING:
    from vutf_cli.domain.user_view import UserView
    from vutf_cli.output import Column, Terminal
    from vutf_cli.services.user_import import RowProblem

app = typer.Typer(
    help="Manage users: create, list, show, change, delete, import and export.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

# The columns `users list` shows as a table (json/jsonl/csv carry every field).
_TABLE_COLUMNS = {
    "username": None,
    "email": None,
    "full_name": None,
    "is_active": "active",
    "is_superuser": "superuser",
    "is_verified": "verified",
    "created_at": None,
}
_KEY_TABLE_COLUMNS = ("name", "key_prefix", "state", "scopes", "expires_at", "last_used_at")
_REPORT_FIELDS = ["format", "rows", "to_create", "created", "skipped", "invalid", "dry_run"]

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


# -- rendering helpers --------------------------------------------------------------
def _user_fields() -> list[str]:
    from dataclasses import fields

    # Not domain.views: that module creates every view class, `users list` needs one.
    from vutf_cli.domain.user_view import UserView

    return [f.name for f in fields(UserView)]


def _user_columns(*, with_hash: bool = False) -> "list[Column]":
    from vutf_cli.output import Column

    columns = [
        Column(name, header=_TABLE_COLUMNS.get(name), in_table=name in _TABLE_COLUMNS)
        for name in _user_fields()
    ]
    if with_hash:
        columns.append(Column("password_hash", in_table=False))
    return columns


def _key_columns() -> "list[Column]":
    from dataclasses import fields

    from vutf_cli.domain.views import ApiKeyView
    from vutf_cli.output import Column

    return [Column(f.name, in_table=f.name in _KEY_TABLE_COLUMNS) for f in fields(ApiKeyView)]


def _record(user: "UserView", **extra: Any) -> dict[str, Any]:
    return {**{name: getattr(user, name) for name in _user_fields()}, **extra}


def _emit_user(app_ctx: AppContext, user: "UserView") -> None:
    app_ctx.terminal.emit_object(user, fields=_user_fields())


def _password(*, stdin: bool, file: Path | None, confirm: bool, what: str = "password") -> str:
    return read_secret(what=what, from_stdin=stdin, from_file=file, confirm=confirm)


def _report_problems(
    terminal: "Terminal", problems: "tuple[RowProblem, ...]", *, prefix: str
) -> None:
    """One line per problem on stderr, shown even with --quiet.

    Not for -o json/jsonl: there the problems are a list in the one JSON
    object (the error on stderr, or the report on stdout).
    """
    from vutf_cli.output.sanitize import inert

    for problem in problems:
        terminal.stderr.write(prefix + inert(str(problem)) + "\n")
    terminal.stderr.flush()


# -- commands -----------------------------------------------------------------------
@app.command()
def create(
    ctx: typer.Context,
    username: Annotated[
        str, typer.Argument(metavar="USERNAME", help="3-100 characters of A-Z a-z 0-9 _ -.")
    ],
    email: Annotated[str, typer.Option("--email", metavar="EMAIL", help="Email address.")],
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
    password = (
        None
        if generate_password
        else _password(stdin=password_stdin, file=password_file, confirm=True)
    )
    result = service.create_user(
        app_ctx.runtime(),
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
    if not result.created:
        terminal.notice(f"user '{result.user.username}' already exists; left unchanged")
        if result.differences:
            terminal.warning(
                f"the existing user '{result.user.username}' differs from the request in: "
                + ", ".join(result.differences)
            )
        _emit_user(app_ctx, result.user)
        return
    terminal.success(f"created user '{result.user.username}'")
    if result.password is None:
        _emit_user(app_ctx, result.user)
        return
    terminal.emit_object(_record(result.user, password=result.password))
    terminal.warning("the generated password is shown only this once: store it now")


@app.command("list")
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
    all_users: Annotated[
        bool, typer.Option("--all", help="Deleted and live users together.")
    ] = False,
    sort: Annotated[
        str,
        typer.Option(
            "--sort",
            metavar="FIELD",
            help="username, email or created_at; prefix - for descending.",
        ),
    ] = "created_at",
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", help="At most N users (1-10000).")
    ] = 100,
    cursor: Annotated[
        str | None,
        typer.Option(
            "--cursor", metavar="CURSOR", help="Continue after a previous page (same sort)."
        ),
    ] = None,
) -> None:
    """List users, a page at a time.

    When there are more users than --limit, the cursor of the next page is
    printed on stderr as "next cursor: ..."; pass it to --cursor with the
    same filters and sort.

    \b
    Examples:
      vutf users list
      vutf users list --inactive --search acme --sort -created_at
      vutf users list --json | jq -r '.[].email'
      vutf users list --limit 50 --cursor "$CURSOR" -o jsonl
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    if deleted and all_users:
        raise InvalidInput("use either --deleted or --all, not both")
    page = service.list_users(
        app_ctx.runtime(),
        active=active,
        superuser=superuser,
        search=search,
        deleted="deleted" if deleted else "all" if all_users else "live",
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    terminal = app_ctx.terminal
    terminal.emit_rows(page.items, columns=_user_columns(), empty_notice="no users found")
    if page.next_cursor is not None:
        # Written even with --quiet: it is how a script gets the next page.
        terminal.stderr.write(f"next cursor: {page.next_cursor}\n")
        terminal.stderr.flush()


@app.command()
def show(
    ctx: typer.Context,
    user: UserArgument,
    with_keys: Annotated[
        bool, typer.Option("--with-keys", help="Also list the user's API keys.")
    ] = False,
) -> None:
    """Show one user (deleted users too, marked as such).

    \b
    Examples:
      vutf users show alice
      vutf users show alice@example.com --with-keys
      vutf users show alice --json | jq .version
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    detail = service.show_user(app_ctx.runtime(), user, with_keys=with_keys)
    terminal = app_ctx.terminal
    if detail.user.is_deleted:
        terminal.notice(f"user '{detail.user.username}' is deleted")
    if detail.api_keys is None:
        _emit_user(app_ctx, detail.user)
    elif terminal.output_format == "table":
        _emit_user(app_ctx, detail.user)
        terminal.stdout.write("\n")
        terminal.emit_rows(detail.api_keys, columns=_key_columns(), empty_notice="no API keys")
    else:
        terminal.emit_object(_record(detail.user, api_keys=list(detail.api_keys)))


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
        app_ctx.runtime(),
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
    _emit_user(app_ctx, result.user)


@app.command("set-password")
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
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    password = _password(
        stdin=password_stdin, file=password_file, confirm=True, what="new password"
    )
    result = service.set_password(
        app_ctx.runtime(), user, password, expected_version=expected_version
    )
    app_ctx.terminal.success(f"password changed for user '{result.username}'")
    _emit_user(app_ctx, result)


@app.command("check-password")
def check_password(
    ctx: typer.Context,
    user: UserArgument,
    password_stdin: PasswordStdin = False,
    password_file: PasswordFile = None,
) -> None:
    """Check a user's password: exit 0 if it matches, 5 if not.

    An unknown user gets the same answer (and takes as long) as a wrong
    password.  Nothing is written to stdout.

    \b
    Examples:
      vutf users check-password alice
      printf '%s' "$PW" | vutf users check-password alice --password-stdin && echo ok
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    password = _password(stdin=password_stdin, file=password_file, confirm=False)
    result = service.check_password(app_ctx.runtime(), user, password)
    app_ctx.terminal.success(f"the password matches for user '{result.username}'")


def _report_change(
    app_ctx: AppContext, user: "UserView", changed: bool, done: str, state: str
) -> None:
    if changed:
        app_ctx.terminal.success(f"{done} user '{user.username}'")
    else:
        app_ctx.terminal.notice(f"user '{user.username}' is already {state}; nothing changed")
    _emit_user(app_ctx, user)


@app.command()
def activate(ctx: typer.Context, user: UserArgument) -> None:
    """Activate a user (an active user is left as it is).

    \b
    Examples:
      vutf users activate alice
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    result = service.activate_user(app_ctx.runtime(), user)
    _report_change(app_ctx, result.user, result.changed, "activated", "active")


@app.command()
def deactivate(ctx: typer.Context, user: UserArgument) -> None:
    """Deactivate a user: they cannot log in and their API keys stop working.

    \b
    Examples:
      vutf users deactivate alice
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    result = service.deactivate_user(app_ctx.runtime(), user)
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
    result = service.verify_user(app_ctx.runtime(), user)
    _report_change(app_ctx, result.user, result.changed, "verified", "verified")


@app.command()
def delete(
    ctx: typer.Context,
    user: UserArgument,
    hard: Annotated[
        bool,
        typer.Option("--hard", help="Remove the row and the user's API keys for good."),
    ] = False,
) -> None:
    """Delete a user: soft (restorable; their API keys are revoked) or --hard.

    Asks for confirmation on a terminal; without one, --yes is required.
    A soft-deleted username or email can be registered again.

    \b
    Examples:
      vutf users delete alice
      vutf users delete alice --hard --yes
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    if hard:
        app_ctx.confirm(f"Permanently delete user '{user}' and all their API keys?")
    else:
        app_ctx.confirm(f"Delete user '{user}' and revoke their API keys?")
    result = service.delete_user(app_ctx.runtime(), user, hard=hard)
    name = result.user.username
    if result.hard:
        app_ctx.terminal.success(
            f"removed user '{name}' for good, with {result.api_keys} API key(s)"
        )
    else:
        app_ctx.terminal.success(f"deleted user '{name}'; revoked {result.api_keys} API key(s)")
    _emit_user(app_ctx, result.user)


@app.command()
def restore(ctx: typer.Context, user: UserArgument) -> None:
    """Restore a soft-deleted user (their revoked API keys stay revoked).

    \b
    Examples:
      vutf users restore alice
      vutf users restore 6f1c2e9a-3b4d-4e5f-8a9b-0c1d2e3f4a5b
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    result = service.restore_user(app_ctx.runtime(), user)
    app_ctx.terminal.success(f"restored user '{result.username}'")
    _emit_user(app_ctx, result)


@app.command()
def export(
    ctx: typer.Context,
    include_hashes: Annotated[
        bool,
        typer.Option("--include-hashes", help="Include password hashes (treat as a secret)."),
    ] = False,
    deleted: Annotated[bool, typer.Option("--deleted", help="Only deleted users.")] = False,
    all_users: Annotated[
        bool, typer.Option("--all", help="Deleted and live users together.")
    ] = False,
) -> None:
    """Export users as json (default), jsonl or csv, streamed.

    The rows are those of `users list` (same fields); --include-hashes adds
    password_hash, so that `users import` can move users to another
    database with their passwords.

    \b
    Examples:
      vutf users export > users.json
      vutf users export -o csv > users.csv
      vutf users export --include-hashes -o jsonl > backup.jsonl
    """
    from vutf_cli.output import Terminal
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    if deleted and all_users:
        raise InvalidInput("use either --deleted or --all, not both")
    rows = service.export_users(
        app_ctx.runtime(),
        deleted="deleted" if deleted else "all" if all_users else "live",
        include_hashes=include_hashes,
    )
    terminal = app_ctx.terminal
    if terminal.output_format == "table":
        settings = app_ctx.settings
        terminal = Terminal(output_format="json", no_color=settings.no_color, quiet=settings.quiet)
    if include_hashes:
        terminal.warning("the export contains password hashes: keep it as safe as the database")
    count = terminal.emit_rows(
        rows, columns=_user_columns(with_hash=include_hashes), empty_notice="no users found"
    )
    if count:
        terminal.notice(f"exported {count} user(s)")


@app.command("import")
def import_users(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="json, jsonl or csv file; - for stdin.")
    ],
    file_format: Annotated[
        str | None,
        typer.Option("--format", metavar="FORMAT", help="json, jsonl or csv (default: from FILE)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything, write nothing.")
    ] = False,
    skip_existing: Annotated[
        bool,
        typer.Option("--skip-existing", help="Leave users whose username exists alone."),
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Import the good rows and only report the bad ones."),
    ] = False,
) -> None:
    """Import users from a json, jsonl or csv file (all or nothing).

    Columns: username, email, full_name, is_superuser, is_active,
    is_verified, and either password (plaintext, the password rules apply)
    or password_hash (argon2id, as written by `users export
    --include-hashes`); the other columns of an export are ignored.  Every
    problem is reported with its line number (and, in a JSON array, the
    object's number), and then nothing is written; with -o json the
    problems are a list in the error object.

    \b
    Examples:
      vutf users import users.csv --dry-run
      vutf users import users.csv
      vutf users export --include-hashes | vutf --database-url "$NEW" users import -
    """
    from vutf_cli.services import users as service

    app_ctx = get_app(ctx)
    data = _read_input(file)
    terminal = app_ctx.terminal
    try:
        report = service.import_users(
            app_ctx.runtime(),
            data,
            fmt=file_format,
            source=file,
            dry_run=dry_run,
            skip_existing=skip_existing,
            skip_invalid=skip_invalid,
            progress=terminal.progress,
        )
    except VutfError as exc:
        problems = getattr(exc, "problems", ())
        if problems and not terminal.is_machine_output:
            _report_problems(terminal, problems, prefix="")
        raise
    if report.problems and not terminal.is_machine_output:
        _report_problems(terminal, report.problems, prefix="skipped: ")
    verb = "would create" if report.dry_run else "created"
    count = report.to_create if report.dry_run else report.created
    terminal.success(
        f"{verb} {count} user(s) from {report.rows} row(s); "
        f"{report.skipped} existing skipped, {report.invalid} invalid"
        + (" (dry run: nothing was written)" if report.dry_run else "")
    )
    if terminal.is_machine_output:
        summary = {name: getattr(report, name) for name in _REPORT_FIELDS}
        terminal.emit_object({**summary, "problems": [p.as_json() for p in report.problems]})
    else:
        terminal.emit_object(report, fields=_REPORT_FIELDS)


def _read_input(file: str) -> bytes:
    if file == "-":
        stream = sys.stdin
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            data: bytes = buffer.read()
            return data
        return stream.read().encode("utf-8")
    try:
        return Path(file).read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise InvalidInput(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
