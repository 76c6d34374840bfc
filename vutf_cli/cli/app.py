"""The console-script entry point, and the one place outcomes become exit codes.

:func:`main` (``vutf``) and :func:`run` (the same, returning the exit code)
hoist the global options, create the :class:`AppContext`, run the Typer
application of :mod:`vutf_cli.cli.root` with ``standalone_mode=False`` and
map whatever comes back to the documented exit code (docs/architecture.md §5):

* a normal return, or ``typer.Exit``: its code (0 unless the command said otherwise);
* a usage error (Typer's ``TyperException`` family: bad flag, bad value,
  unknown command), or an argument no process's argv could hold (a NUL,
  a lone surrogate: a ``batch`` line): ``InvalidInput``, exit 2, the
  message masked and capped;
* ``typer.Abort`` (end of input at a prompt), Ctrl-C or SIGTERM: exit 130;
* a :class:`VutfError`: its own exit code;
* :class:`PipeClosed` (the reader of stdout went away, ``| head``): exit 0, quietly;
* anything else is a bug: exit 1, the traceback only with ``--debug``.

Errors are one line on stderr (or one JSON error object with ``-o
json|jsonl``).  Global options may appear anywhere before ``--`` (``vutf
users list --json`` and ``vutf --json users list`` are the same): they are
moved to the front before Typer parses the line.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any, Final, NoReturn, Protocol

import typer

from vutf_cli.cli.context import AppContext, GlobalOptions, MissingCommand
from vutf_cli.cli.root import (
    GLOBAL_FLAGS,
    GLOBAL_VALUE_OPTIONS,
    HELP_OPTION_NAMES,
    PROG_NAME,
    app,
)
from vutf_cli.cli.standard_streams import prepare_standard_streams
from vutf_cli.errors import (
    ExitCode,
    InternalError,
    InvalidInput,
    PipeClosed,
    StdoutFailed,
    VutfError,
)
from vutf_cli.interrupts import interrupt_on_signals
from vutf_cli.output.stdout import Stdout, discard_unwritten

_GLOBAL_SHORT_FLAGS = re.compile(r"-[yq]{2,}")
NUL_ARGUMENT = "an argument cannot contain a NUL character"
LONE_SURROGATE_ARGUMENT = "an argument cannot contain a lone surrogate (text that is not Unicode)"


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
        if arg in GLOBAL_FLAGS or (name in GLOBAL_VALUE_OPTIONS and "=" in arg):
            hoisted.append(arg)
        elif arg in GLOBAL_VALUE_OPTIONS:
            hoisted.extend(args[i : i + 2])
            i += 1
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            hoisted.append(arg)
        elif _GLOBAL_SHORT_FLAGS.fullmatch(arg):
            # -yq: the short global flags, bundled as Click would read them.
            hoisted.extend(f"-{flag}" for flag in arg[1:])
        else:
            rest.append(arg)
        i += 1
    return hoisted + rest


def _options_from_args(args: Sequence[str]) -> GlobalOptions:
    """Best-effort read of the global options, to report errors met before the root callback."""
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
        options.quiet = (
            options.quiet or arg == "--quiet" or bool(re.fullmatch(r"-[yq]*q[yq]*", arg))
        )
        options.no_color = options.no_color or arg == "--no-color"
    return options


class Interrupted(VutfError):
    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"

    def __init__(self) -> None:
        super().__init__("interrupted")


class CommandTree(Protocol):
    """The command Typer builds from :data:`app`, as a running command sees it
    (``ctx.find_root().command``): Click's public ``main``."""

    def main(
        self,
        *,
        args: Sequence[str] | None,
        prog_name: str | None,
        standalone_mode: bool,
        **extra: Any,
    ) -> Any: ...


def run(argv: Sequence[str], *, within: str | None = None, tree: CommandTree | None = None) -> int:
    """Run one command line (without the program name); return its exit code.

    Callable again and again in one process: everything a command line sets
    up (settings, terminal, database) lives in its own :class:`AppContext`
    and is closed here.  ``within`` names the command that runs this line
    inside its own process (``batch``): JSON output by default and the audit
    rows' command path ``batch …`` (:class:`AppContext`).  ``tree`` is the
    command tree that command is running in: its lines reuse it instead of
    having Typer build the whole tree again for each one.
    """
    args = hoist_global_options(argv)
    app_ctx = AppContext(_options_from_args(args), within=within)
    try:
        refusal = _not_a_command_line(args)
        if refusal is not None:
            return _report(InvalidInput(refusal), app_ctx)
        return _run(args, app_ctx, tree)
    finally:
        app_ctx.close()


def _not_a_command_line(args: Sequence[str]) -> str | None:
    """Why ``args`` could not be a process's argv, or None.

    A process's argv is bytes without NUL, decoded with the filesystem
    encoding (undecodable bytes become the surrogates \\udc80-\\udcff, which
    encode back).  A batch line's JSON can hold anything: a NUL, or another
    lone surrogate such as \\ud800.  Refused here, before parsing, because the
    option parser's own checks (a path's stat) would fail on them as a bug,
    and no command's value (path, name, text) may hold them.
    """
    for arg in args:
        if "\x00" in arg:
            return NUL_ARGUMENT
        try:
            os.fsencode(arg)
        except UnicodeEncodeError:
            return LONE_SURROGATE_ARGUMENT
    return None


def _run(args: list[str], app_ctx: AppContext, tree: CommandTree | None) -> int:
    streams = sys.stdout, sys.stderr
    try:
        if tree is None:
            result = app(args=args, prog_name=PROG_NAME, standalone_mode=False, obj=app_ctx)
        else:
            result = tree.main(args=args, prog_name=PROG_NAME, standalone_mode=False, obj=app_ctx)
        # Flushed here, not at interpreter exit, so a closed pipe is seen below.
        Stdout().flush()
    except (PipeClosed, BrokenPipeError):
        discard_unwritten(sys.stdout)
        return ExitCode.OK
    except (typer.Abort, KeyboardInterrupt):
        return _report(Interrupted(), app_ctx)
    except VutfError as exc:
        if isinstance(exc, StdoutFailed):
            discard_unwritten(sys.stdout)
        return _report(exc, app_ctx)
    except typer.TyperException as exc:
        return _report(InvalidInput(_safe_usage_message(exc.format_message())), app_ctx)
    except SystemExit as exc:
        if (sys.stdout, sys.stderr) != streams:
            # Typer answers a closed pipe it meets itself (its --help; vutf's own
            # writes raise PipeClosed) by wrapping both streams and exiting 1.
            sys.stdout, sys.stderr = streams
            discard_unwritten(sys.stdout)
            return ExitCode.OK
        # Typer ends a shell completion request (_VUTF_COMPLETE) with sys.exit.
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except Exception as exc:
        failed_stdout = _help_not_written(exc, args)
        if failed_stdout is not None:
            discard_unwritten(sys.stdout)
            return _report(failed_stdout, app_ctx)
        if app_ctx.options.debug:
            traceback.print_exc()
        return _report(
            InternalError(
                f"internal error: {type(exc).__name__}: {exc}",
                hint="this is a bug; re-run with --debug for the traceback",
            ),
            app_ctx,
        )
    # standalone_mode=False returns the code of a typer.Exit, or the command's return value.
    return result if isinstance(result, int) else ExitCode.OK


_KEY_SHAPED = re.compile(r"vutf_[0-9A-Za-z]{38}")
_MAX_USAGE_MESSAGE = 300


def _safe_usage_message(message: str) -> str:
    """Typer quotes the offending argument; it may be a pasted API key or 10 MB of junk."""
    message = _KEY_SHAPED.sub("vutf_<key hidden>", message)
    if len(message) > _MAX_USAGE_MESSAGE:
        message = message[:_MAX_USAGE_MESSAGE] + "…"
    return message


def _help_not_written(exc: Exception, args: Sequence[str]) -> StdoutFailed | None:
    """``exc`` as stdout failing while Typer wrote ``--help`` there itself.

    Every other write to stdout is vutf's own (:class:`Stdout`, which names
    a failure); the help text is Typer's, whose ``OSError`` does not say which
    file it was about.  While help is printed nothing else is written.
    """
    if not isinstance(exc, OSError) or exc.filename is not None:
        return None
    if exc.errno not in _WRITE_ERRORS or not any(arg in HELP_OPTION_NAMES for arg in args):
        return None
    return StdoutFailed(exc.strerror or str(exc))


# Why a write to a file fails when the file itself is fine to write to.
_WRITE_ERRORS: Final = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF, errno.EROFS}
)


def _report(error: VutfError, app_ctx: AppContext) -> int:
    try:
        if isinstance(error, MissingCommand) and not app_ctx.terminal.is_machine_output:
            # `vutf users` alone: the group's help, as Click shows it for no_args_is_help.
            sys.stderr.write(error.usage_help + "\n")
            sys.stderr.flush()
            return int(error.exit_code)
        if app_ctx.options.debug and error.__cause__ is not None:
            traceback.print_exception(error.__cause__)
        app_ctx.terminal.error(error)
    except Exception:
        # Never let the error reporter itself end in a traceback.
        sys.stderr.write(f"error: {error.message}\n")
    return int(error.exit_code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: ``vutf ARGS``.

    The process's standard streams are set up (:mod:`vutf_cli.cli.standard_streams`)
    and SIGTERM and SIGHUP end vutf like Ctrl-C (:mod:`vutf_cli.interrupts`): as
    ``KeyboardInterrupt`` in the main thread, so transactions roll back,
    temporary files are removed and the exit code is 130.  Done here and not
    in :func:`run`, which tests call inside their own process.
    """
    prepare_standard_streams()  # closed at start (`>&-`), or not UTF-8
    interrupt_on_signals()  # SIGTERM and SIGHUP end vutf as Ctrl-C does
    sys.exit(run(sys.argv[1:] if argv is None else argv))


# `app` is re-exported for tests that walk the Typer application itself.
__all__ = ["app", "hoist_global_options", "main", "run"]
