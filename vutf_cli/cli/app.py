"""The root command: global options, and the one place errors become exit codes.

Global options may appear anywhere before ``--`` (``vutf users list --json``
and ``vutf --json users list`` are the same): they are hoisted to the front
before Click parses the line.  Every exception ends here and becomes one line
on stderr (or a JSON error object with ``-o json|jsonl``) and the documented
exit code; a traceback only with ``--debug``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from vutf_cli import __version__
from vutf_cli.cli.context import AppContext, GlobalOptions, get_app
from vutf_cli.errors import ExitCode, InternalError, InvalidInput, VutfError

# Global options: name -> takes a value?
_GLOBAL_VALUE_OPTIONS = {"--database-url", "--output", "-o", "--actor"}
_GLOBAL_FLAGS = {"--json", "--yes", "--quiet", "--no-color", "--debug", "--version"}


class _PipeClosed(Exception):
    """stdout was closed by the reader (``| head``): a normal way to stop."""


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move global options (anywhere before ``--``) to the front of ``args``."""
    hoisted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if arg in _GLOBAL_FLAGS or (name in _GLOBAL_VALUE_OPTIONS and "=" in arg):
            hoisted.append(arg)
        elif arg in _GLOBAL_VALUE_OPTIONS:
            hoisted.extend(args[i : i + 2])
            i += 1
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            hoisted.append(arg)
        else:
            rest.append(arg)
        i += 1
    return hoisted + rest


def _options_from_args(args: Sequence[str]) -> GlobalOptions:
    """Best-effort read of the global options, for reporting errors before parsing."""
    options = GlobalOptions()
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value: str | None = None
        if arg in ("-o", "--output") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--output="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            value = arg[2:]
        if value is not None:
            options.output = value
        if arg == "--json":
            options.output = "json"
        options.debug = options.debug or arg == "--debug"
        options.quiet = options.quiet or arg == "--quiet"
        options.no_color = options.no_color or arg == "--no-color"
    return options


class VutfGroup(TyperGroup):
    """Root group: hoists global options and maps every error to its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            raise _PipeClosed() from exc

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = hoist_global_options(list(sys.argv[1:] if args is None else args))
        code = self._run(argv, prog_name or "vutf", complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, argv: list[str], prog_name: str, complete_var: str | None, **extra: Any) -> int:
        from typer import _click as click
        from typer.exceptions import Abort

        app_ctx: AppContext | None = None
        try:
            extra.setdefault("obj", None)
            result = super().main(
                args=argv,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            app_ctx = _LAST_CONTEXT.get("app")
            return int(result) if isinstance(result, int) else 0
        except _PipeClosed:
            _silence_stdout()
            return ExitCode.OK
        except Abort:
            return _report(InterruptedError_(), argv)
        except click.exceptions.ClickException as exc:
            return _report(InvalidInput(exc.format_message()), argv)
        except VutfError as exc:
            return _report(exc, argv)
        except KeyboardInterrupt:
            return _report(InterruptedError_(), argv)
        except Exception as exc:
            if _options_from_args(argv).debug:
                traceback.print_exc()
            return _report(
                InternalError(
                    f"internal error: {type(exc).__name__}: {exc}",
                    hint="this is a bug; re-run with --debug for the traceback",
                ),
                argv,
            )
        finally:
            app_ctx = app_ctx or _LAST_CONTEXT.pop("app", None)
            if app_ctx is not None:
                app_ctx.close()


class InterruptedError_(VutfError):  # trailing _ avoids shadowing the builtin
    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"

    def __init__(self) -> None:
        super().__init__("interrupted")


_LAST_CONTEXT: dict[str, AppContext] = {}


def _silence_stdout() -> None:
    # Python flushes stdout at exit; on a closed pipe that would print
    # "Exception ignored ... BrokenPipeError".  Point it at /dev/null instead.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _report(error: VutfError, argv: Sequence[str]) -> int:
    app_ctx = _LAST_CONTEXT.get("app")
    if app_ctx is None:
        app_ctx = AppContext(_options_from_args(argv))
    if app_ctx.options.debug and error.__cause__ is not None:
        traceback.print_exception(error.__cause__)
    try:
        app_ctx.terminal.error(error)
    except Exception:
        # Never let the error reporter itself end in a traceback.
        sys.stderr.write(f"error: {error.message}\n")
    return int(error.exit_code)


EPILOG = (
    "Global options may also follow the subcommand (vutf users list --json). "
    "Exit codes: 0 ok, 2 invalid input, 3 not found, 4 conflict, 5 denied, "
    "6 integrity failure, 7 database unavailable, 8 schema not at head."
)

app = typer.Typer(
    name="vutf",
    cls=VutfGroup,
    help="Administer the ViolentUTF identity and audit store: users, API keys, audit log, schema.",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"vutf {__version__}\n")
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
            "--output", "-o", help="Output format: table, json, jsonl, csv (env VUTF_OUTPUT)."
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
    options = GlobalOptions(
        database_url=database_url,
        output="json" if as_json else output,
        actor=actor,
        yes=yes,
        quiet=quiet,
        no_color=no_color,
        debug=debug,
    )
    app_ctx = AppContext(options)
    ctx.obj = app_ctx
    _LAST_CONTEXT["app"] = app_ctx
    # Validate settings now so a bad config fails before any work.
    _ = app_ctx.settings


def _register_groups() -> None:
    from vutf_cli.cli import db as db_commands

    app.add_typer(db_commands.app, name="db")
    for module_name in ("users", "keys", "audit"):
        try:
            module = __import__(f"vutf_cli.cli.{module_name}", fromlist=["app"])
        except ModuleNotFoundError as exc:
            if exc.name != f"vutf_cli.cli.{module_name}":
                raise
            continue
        app.add_typer(module.app, name=module_name)


_register_groups()
command = typer.main.get_command(app)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    command.main(args=argv, prog_name="vutf")


__all__ = ["app", "command", "get_app", "hoist_global_options", "main"]
