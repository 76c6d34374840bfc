"""The console-script entry point, and the one place errors become exit codes.

``main`` answers the cheapest requests before Typer is even imported:

* ``vutf --version`` (alone) prints the version;
* a shell completion request (``_VUTF_COMPLETE`` set) is answered from the
  static command tree in :mod:`vutf_cli.cli.fast_completion` whenever it can
  be (it defers the rare cases it does not model to Typer itself).

Everything else goes to the Typer application in :mod:`vutf_cli.cli.root`.

Global options may appear anywhere before ``--`` (``vutf users list --json``
and ``vutf --json users list`` are the same): they are hoisted to the front
before Click parses the line.  Every exception ends in :func:`run_guarded`
and becomes one line on stderr (or a JSON error object with ``-o
json|jsonl``) and the documented exit code; a traceback only with ``--debug``.

``app`` (the Typer application) and ``command`` (its click command) are still
importable from here; they are built on first access.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from vutf_cli import __version__
from vutf_cli.errors import ExitCode, InternalError, InvalidInput, VutfError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from vutf_cli.cli.context import AppContext, GlobalOptions

PROG_NAME = "vutf"
COMPLETE_VAR = "_VUTF_COMPLETE"

EPILOG = (
    "Global options may also follow the subcommand (vutf users list --json). "
    "Exit codes: 0 ok, 2 invalid input, 3 not found, 4 conflict, 5 denied, "
    "6 integrity failure, 7 database unavailable, 8 schema not at head."
)

# Global options: name -> takes a value?
_GLOBAL_VALUE_OPTIONS = {"--database-url", "--output", "-o", "--actor"}
_GLOBAL_FLAGS = {"--json", "--yes", "--quiet", "--no-color", "--debug", "--version"}


class PipeClosed(Exception):
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
    from vutf_cli.cli.context import GlobalOptions

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


class InterruptedError_(VutfError):  # trailing _ avoids shadowing the builtin
    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"

    def __init__(self) -> None:
        super().__init__("interrupted")


# The AppContext of the command being run (set by the root callback).
LAST_CONTEXT: dict[str, AppContext] = {}


def run_guarded(parse_and_run: Callable[[list[str]], Any], argv: list[str]) -> int:
    """Run the parsed command line; map whatever it raises to an exit code (and a message)."""
    from typer import _click as click
    from typer.exceptions import Abort

    app_ctx: AppContext | None = None
    try:
        result = parse_and_run(argv)
        app_ctx = LAST_CONTEXT.get("app")
        return int(result) if isinstance(result, int) else 0
    except PipeClosed:
        _silence_stdout()
        return ExitCode.OK
    except Abort:
        return _report(InterruptedError_(), argv)
    except click.exceptions.NoArgsIsHelpError as exc:
        return _missing_command(exc.ctx, argv)
    except click.exceptions.ClickException as exc:
        return _report(InvalidInput(_safe_usage_message(exc.format_message())), argv)
    except VutfError as exc:
        return _report(exc, argv)
    except KeyboardInterrupt:
        return _report(InterruptedError_(), argv)
    except Exception as exc:
        if _options_from_args(argv).debug:
            import traceback

            traceback.print_exc()
        return _report(
            InternalError(
                f"internal error: {type(exc).__name__}: {exc}",
                hint="this is a bug; re-run with --debug for the traceback",
            ),
            argv,
        )
    finally:
        app_ctx = app_ctx or LAST_CONTEXT.pop("app", None)
        if app_ctx is not None:
            app_ctx.close()


_KEY_SHAPED = r"vutf_[0-9A-Za-z]{38}"
_MAX_USAGE_MESSAGE = 300


def _safe_usage_message(message: str) -> str:
    """Click quotes the offending argument; it may be a pasted API key or 10 MB of junk."""
    import re

    message = re.sub(_KEY_SHAPED, "vutf_<key hidden>", message)
    if len(message) > _MAX_USAGE_MESSAGE:
        message = message[:_MAX_USAGE_MESSAGE] + "…"
    return message


def _silence_stdout() -> None:
    # Python flushes stdout at exit; on a closed pipe that would print
    # "Exception ignored ... BrokenPipeError".  Point it at /dev/null instead.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _missing_command(ctx: Any, argv: Sequence[str]) -> int:
    """``vutf`` or ``vutf users`` alone: the group's help on stderr, exit 2 (as Click does).

    With -o json|jsonl the one JSON error object instead, as for any usage error.
    """
    from vutf_cli.cli.context import AppContext

    app_ctx = LAST_CONTEXT.get("app") or AppContext(_options_from_args(argv))
    if app_ctx.terminal.is_machine_output:
        hint = f"run '{ctx.command_path} --help' for the commands"
        return _report(InvalidInput("missing command", hint=hint), argv)
    sys.stderr.write(ctx.get_help() + "\n")
    sys.stderr.flush()
    return int(ExitCode.USAGE)


def _report(error: VutfError, argv: Sequence[str]) -> int:
    from vutf_cli.cli.context import AppContext

    app_ctx = LAST_CONTEXT.get("app")
    if app_ctx is None:
        app_ctx = AppContext(_options_from_args(argv))
    if app_ctx.options.debug and error.__cause__ is not None:
        import traceback

        traceback.print_exception(error.__cause__)
    try:
        app_ctx.terminal.error(error)
    except Exception:
        # Never let the error reporter itself end in a traceback.
        sys.stderr.write(f"error: {error.message}\n")
    return int(error.exit_code)


def _answer_completion_request() -> None:
    """Answer a completion request from the static tree and exit, if it can be answered."""
    from vutf_cli.cli.fast_completion import answer_completion_request

    answer = answer_completion_request(os.environ, prog_name=PROG_NAME, complete_var=COMPLETE_VAR)
    if answer is None:
        return  # not modelled: Typer answers it
    if answer.output is not None:
        sys.stdout.write(answer.output + "\n")
        sys.stdout.flush()
    sys.exit(answer.exit_code)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get(COMPLETE_VAR):
        _answer_completion_request()
    elif args == ["--version"]:
        sys.stdout.write(f"vutf {__version__}\n")
        sys.stdout.flush()
        sys.exit(ExitCode.OK)
    from vutf_cli.cli.root import command

    command.main(args=args, prog_name=PROG_NAME)


def __getattr__(name: str) -> Any:
    # The Typer application is built on first use, not when this module loads.
    if name in ("app", "command"):
        from vutf_cli.cli import root

        return getattr(root, name)
    if name == "get_app":
        from vutf_cli.cli.context import get_app

        return get_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from vutf_cli.cli.context import get_app
    from vutf_cli.cli.root import app, command

__all__ = ["app", "command", "get_app", "hoist_global_options", "main"]
