"""The Typer application: the root command, its global options, and the command groups.

Built with Typer's public API only, every group registered up front.  The
entry point that runs it (option hoisting, exit codes) is
:mod:`vutf_cli.cli.app`, which imports this module and not the reverse.

A group invoked without a command (``vutf``, ``vutf users``) is refused with
:class:`~vutf_cli.cli.context.MissingCommand`: its help on stderr and exit 2,
or one JSON error object with ``-o json|jsonl`` (docs/architecture.md §5).
For that the groups are registered with a callback of their own here, so a
group module must not define a callback (it would be replaced).

No ``from __future__ import annotations`` here: Typer reads the root
callback's annotations, and string annotations would have to be evaluated.
"""

from typing import Annotated

import typer

from vutf_cli.cli import audit, batch, completion, db, declarative, doctor, keys, roles, users
from vutf_cli.cli.completion import choices_label
from vutf_cli.cli.context import GlobalOptions, MissingCommand, get_app
from vutf_cli.errors import ExitCode, InvalidInput
from vutf_cli.output_formats import OUTPUT_FORMATS

PROG_NAME = "vutf"
HELP_OPTION_NAMES = ("-h", "--help")

# The options of `root` below, which the entry point moves to the front of the
# line wherever they appear: those that take a value, and the flags.  A global
# option keeps its one meaning wherever it stands, so no command may define an
# option of the same name (tests/cli/test_help_contract.py walks the tree).
# tests/cli/test_entry_point.py checks these against `vutf --help`.
GLOBAL_VALUE_OPTIONS = frozenset({"--database-url", "--output", "-o", "--actor"})
GLOBAL_FLAGS = frozenset(
    {"--json", "--yes", "-y", "--quiet", "-q", "--no-color", "--debug", "--version"}
)

# Every exit code (errors.ExitCode), in the words of the help; a test checks
# that none is missing.
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "ok",
    ExitCode.INTERNAL: "internal error (a bug; --debug shows the traceback)",
    ExitCode.USAGE: "invalid input or usage",
    ExitCode.NOT_FOUND: "not found",
    ExitCode.CONFLICT: "conflict",
    ExitCode.DENIED: "denied",
    ExitCode.INTEGRITY: "integrity failure",
    ExitCode.UNAVAILABLE: "database unavailable",
    ExitCode.SCHEMA_OUTDATED: "schema not at head",
    ExitCode.NOT_DELIVERED: "one-time secret created but not delivered",
    ExitCode.CHANGES_PENDING: "vutf plan found changes to apply",
    ExitCode.INTERRUPTED: (
        "interrupted (Ctrl-C, SIGTERM, SIGHUP, end of input at a prompt) or cancelled"
    ),
}

EPILOG = (
    "Global options may also follow the subcommand (vutf users list --json) and keep"
    " their meaning there. Exit codes: "
    + ", ".join(f"{int(code)} {meaning}" for code, meaning in EXIT_CODES.items())
    + "."
)

# Shown at the end of every command's and group's help: the global options
# apply there too (they are hoisted from anywhere on the line).
GLOBAL_OPTIONS_REFERENCE = (
    "\b\n"  # kept as written: Click would break "--database-url" at its hyphen
    "Global options (anywhere on the line; details and exit codes: vutf --help):\n"
    "  -o/--output FORMAT, --json, --database-url URL, --actor USER,\n"
    "  -y/--yes, -q/--quiet, --no-color, --debug"
)


def require_command(ctx: typer.Context) -> None:
    # No docstring on purpose: Typer would show it as the help of a group without one.
    if ctx.invoked_subcommand is None:
        raise MissingCommand(
            hint=f"run '{ctx.command_path} --help' for the commands",
            usage_help=ctx.get_help(),
        )


app = typer.Typer(
    name=PROG_NAME,
    help="Administer the ViolentUTF identity and audit store: users, API keys, audit log, schema.",
    epilog=EPILOG,
    # The root callback runs without a command too, and refuses it (require_command).
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    # Completion scripts are static (`vutf completion SHELL`), not Typer's own.
    add_completion=False,
    context_settings={"help_option_names": list(HELP_OPTION_NAMES), "max_content_width": 100},
)

# The command groups, in the order `vutf --help` lists them.
GROUPS: dict[str, typer.Typer] = {
    "db": db.app,
    "users": users.app,
    "keys": keys.app,
    "roles": roles.app,
    "audit": audit.app,
    "completion": completion.app,
}

for _name, _group in GROUPS.items():
    # Typer's own record of each command (CommandInfo.epilog, the `epilog=` of
    # @app.command): every command's help ends with the global options.
    for _info in _group.registered_commands:
        if _info.epilog is None:
            _info.epilog = GLOBAL_OPTIONS_REFERENCE
    app.add_typer(
        _group,
        name=_name,
        callback=require_command,
        invoke_without_command=True,
        no_args_is_help=False,
        epilog=GLOBAL_OPTIONS_REFERENCE,
    )

app.command("doctor", epilog=GLOBAL_OPTIONS_REFERENCE)(doctor.doctor)
app.command("plan", epilog=GLOBAL_OPTIONS_REFERENCE)(declarative.plan)
app.command("apply", epilog=GLOBAL_OPTIONS_REFERENCE)(declarative.apply)
app.command("export-state", epilog=GLOBAL_OPTIONS_REFERENCE)(declarative.export_state)
app.command("batch", epilog=GLOBAL_OPTIONS_REFERENCE)(batch.batch)


def _version_callback(ctx: typer.Context, value: bool) -> None:
    if not value:
        return
    # Eager: runs before -o is parsed, so the entry point's reading of the
    # command line decides the format (like `audit head`, only -o/--json given
    # on the command line makes it a record; VUTF_OUTPUT does not).
    app_ctx = get_app(ctx)
    fmt = app_ctx.options.output
    if fmt in (None, "table"):
        stdout = app_ctx.terminal.stdout
        stdout.write(doctor.version_text())
        stdout.flush()
    else:
        app_ctx.terminal.emit_object(doctor.version_record())
    raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="Database URL (env VUTF_DATABASE_URL). Default: SQLite file in the data dir.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help=f"Output format: {choices_label(OUTPUT_FORMATS)} (env VUTF_OUTPUT).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            metavar="USER",
            help="Who is acting, for the audit log (env VUTF_ACTOR); never a filter.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Assume yes to confirmations.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only data and errors.")] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colours (NO_COLOR is honoured too).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the versions of vutf, Python, SQLAlchemy and the schema head; exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Administer the ViolentUTF identity and audit store.

    \b
    Examples:
      vutf db upgrade
      vutf users create alice --email alice@example.com
      vutf users list --json | jq -r '.[].username'
      vutf doctor
    """
    if as_json and output not in (None, "json"):
        raise InvalidInput("--json conflicts with -o " + str(output))
    app_ctx = get_app(ctx)
    app_ctx.configure(
        GlobalOptions(
            database_url=database_url,
            output="json" if as_json else output,
            actor=actor,
            yes=yes,
            quiet=quiet,
            no_color=no_color,
            debug=debug,
        )
    )
    require_command(ctx)
    # Validate settings now so a bad config fails before any work.
    _ = app_ctx.settings


__all__ = [
    "EPILOG",
    "EXIT_CODES",
    "GLOBAL_FLAGS",
    "GLOBAL_OPTIONS_REFERENCE",
    "GLOBAL_VALUE_OPTIONS",
    "GROUPS",
    "HELP_OPTION_NAMES",
    "PROG_NAME",
    "app",
    "require_command",
]
