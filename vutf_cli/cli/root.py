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

import sys
from typing import Annotated

import typer

from vutf_cli import __version__
from vutf_cli.cli import audit, completion, db, keys, users
from vutf_cli.cli.context import GlobalOptions, MissingCommand, get_app
from vutf_cli.errors import InvalidInput, PipeClosed
from vutf_cli.output_formats import OUTPUT_FORMATS

PROG_NAME = "vutf"

# The options of `root` below, which the entry point moves to the front of the
# line wherever they appear: those that take a value, and the flags.
# tests/cli/test_entry_point.py checks these against `vutf --help`.
GLOBAL_VALUE_OPTIONS = frozenset({"--database-url", "--output", "-o", "--actor"})
GLOBAL_FLAGS = frozenset({"--json", "--yes", "--quiet", "--no-color", "--debug", "--version"})

EPILOG = (
    "Global options may also follow the subcommand (vutf users list --json). "
    "Exit codes: 0 ok, 2 invalid input, 3 not found, 4 conflict, 5 denied, "
    "6 integrity failure, 7 database unavailable, 8 schema not at head, "
    "9 one-time secret created but not delivered."
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
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

# The command groups, in the order `vutf --help` lists them.
GROUPS: dict[str, typer.Typer] = {
    "db": db.app,
    "users": users.app,
    "keys": keys.app,
    "audit": audit.app,
    "completion": completion.app,
}

for _name, _group in GROUPS.items():
    app.add_typer(
        _group,
        name=_name,
        callback=require_command,
        invoke_without_command=True,
        no_args_is_help=False,
    )


def _version_callback(value: bool) -> None:
    if value:
        try:
            sys.stdout.write(f"vutf {__version__}\n")
            sys.stdout.flush()
        except BrokenPipeError as exc:
            # Typer would turn an EPIPE into exit 1; a closed pipe is a normal stop.
            raise PipeClosed() from exc
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database URL (env VUTF_DATABASE_URL). Default: SQLite file in the data dir.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help=f"Output format: {', '.join(OUTPUT_FORMATS)} (env VUTF_OUTPUT)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="Who is acting, for the audit log (env VUTF_ACTOR)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Assume yes to confirmations.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Only data and errors.")] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colours (NO_COLOR is honoured too).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Administer the ViolentUTF identity and audit store.

    \b
    Examples:
      vutf users create alice --email alice@example.com
      vutf users list --json | jq -r '.[].username'
      vutf db upgrade
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
    "GLOBAL_FLAGS",
    "GLOBAL_VALUE_OPTIONS",
    "GROUPS",
    "PROG_NAME",
    "app",
    "require_command",
]
