"""`vutf batch`: many command lines in one process, one JSON result line each.

A CI script that starts vutf hundreds of times pays the start-up (Python,
imports, settings) every time.  ``vutf batch -f FILE`` reads one JSON object
per line::

    {"args": ["users", "create", "alice", "--email", "a@x.io", "--password-stdin"],
     "stdin": "the password"}

and runs each ``args`` through the same entry point as ``vutf ARGS``
(:func:`vutf_cli.cli.app.run`: option hoisting, a fresh ``AppContext``, the
documented exit codes), so there is no second dispatcher: every line is its
own command, with its own transaction(s) and audit rows (command path
``batch users create``).  Per line:

* stdout and stderr are captured and reported in the line's result; stdin is
  the line's ``"stdin"`` string (empty without one), never the terminal, so
  nothing prompts: a line that would ask is refused as a script's would be;
* output is JSON unless the line's own args ask for another format;
* global options given to ``batch`` itself (``--database-url``, ``--actor``,
  ``--yes``, ...) apply to every line, before the line's own.

Results are JSON lines on stdout (docs/architecture.md §5.5)::

    {"line": 3, "exit_code": 0, "result": {...}}
    {"line": 4, "exit_code": 4, "error": {"code": "conflict", ...}}

Blank lines and lines starting with ``#`` are skipped.  A line that is not
such an object, that runs ``batch`` or ``completion``, or whose ``"stdin"``
holds a lone surrogate, is exit 2 for that line; so is one longer than
:data:`MAX_LINE_BYTES`, which also ends the batch.  The batch stops after the
first line that fails (like ``set -e``) unless ``--keep-going``;
Ctrl-C/SIGTERM always stops it.  Its exit code is
the worst of the lines run, by :data:`SEVERITY`.

One-time secrets (``--generate-password``, ``keys create``/``rotate``
without ``--secret-file``) are in the line's result, delivered like the
command's own stdout: flushed and synced, and a result that cannot be written
stops the batch with exit 9 naming the line (its changes are committed).

No ``from __future__ import annotations`` here: Typer reads the annotations.
"""

import codecs
import io
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Final

import typer

from vutf_cli.cli.context import AppContext, GlobalOptions, get_app, stdin_is_tty
from vutf_cli.errors import ExitCode, InvalidInput, SecretNotDelivered
from vutf_cli.input_documents import JsonRefused, parse_json

if TYPE_CHECKING:
    from vutf_cli.cli.app import CommandTree

__all__ = ["REFUSED_COMMANDS", "SEVERITY", "batch", "worse"]

WITHIN: Final = "batch"
# Commands a line may not run: a batch in a batch, and shell completion (a
# script for a shell, not a result).
REFUSED_COMMANDS: Final = frozenset({"batch", "completion"})
_LINE_KEYS: Final = frozenset({"args", "stdin"})
# One line is one command and its "stdin" (an import document can be large).
MAX_LINE_BYTES: Final = 64 * 2**20

# Exit codes from worst to best: the batch exits with the worst of its lines.
# An interruption or a bug first; then a secret that was lost, damage and an
# unreachable or outdated database (the environment is wrong for every line);
# then refusals of one line's request; "changes pending" (vutf plan) is not an
# error.  A code not listed counts as an internal error.
SEVERITY: Final = (
    ExitCode.INTERRUPTED,
    ExitCode.INTERNAL,
    ExitCode.NOT_DELIVERED,
    ExitCode.INTEGRITY,
    ExitCode.UNAVAILABLE,
    ExitCode.SCHEMA_OUTDATED,
    ExitCode.DENIED,
    ExitCode.CONFLICT,
    ExitCode.NOT_FOUND,
    ExitCode.USAGE,
    ExitCode.CHANGES_PENDING,
    ExitCode.OK,
)
_RANK: Final = {int(code): rank for rank, code in enumerate(SEVERITY)}


def worse(a: int, b: int) -> int:
    """The worse of two exit codes by :data:`SEVERITY`."""
    internal = _RANK[ExitCode.INTERNAL]
    return a if _RANK.get(a, internal) <= _RANK.get(b, internal) else b


def batch(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            metavar="FILE",
            help="The commands, one JSON object per line; - (or no --file) for stdin.",
            dir_okay=False,
            allow_dash=True,
        ),
    ] = None,
    keep_going: Annotated[
        bool,
        typer.Option(
            "--keep-going",
            help="Run every line even after one fails (default: stop after the first failure).",
        ),
    ] = False,
) -> None:
    """Run many commands in one process, one JSON line each.

    Each input line is {"args": [...]} (the words after `vutf`), with an optional
    "stdin" string for --password-stdin and the like.  Every line runs as
    `vutf ARGS` would (its own transaction and audit rows), with JSON output
    unless its args say otherwise; global options given here apply to every
    line.  Each result is {"line", "exit_code"} plus "result" (the JSON the
    command printed), "stdout" (other output), "error" (the JSON error
    object) and "stderr" (other messages), as they occur.  One-time secrets
    are in the results: use --secret-file for keys, or keep the results
    private.  Stops after the first failing line unless --keep-going; the
    exit code is the worst of the lines run (interrupted, internal,
    not delivered, integrity, unavailable, schema, denied, conflict, not
    found, usage, changes pending, ok).

    \b
    Examples:
      vutf batch -f setup.jsonl
      jq -Rc '{args: ["users", "show", .]}' names.txt | vutf batch --keep-going
    """
    app_ctx = get_app(ctx)
    if app_ctx.within is not None:
        raise InvalidInput("batch cannot run inside a batch")
    app_ctx.raw_output_format({"jsonl"}, prints="one JSON result per line")
    inherited = _inherited_args(app_ctx.options)
    tree = ctx.find_root().command
    worst = int(ExitCode.OK)
    with ExitStack() as stack:
        source = _open_source(file, stack)
        for number, raw in enumerate(source, start=1):
            if raw is None:  # over-long: what follows cannot be trusted to start a line
                refused = InvalidInput(f"the line is longer than {MAX_LINE_BYTES // 2**20} MiB")
                _deliver(app_ctx, _refusal(number, refused))
                worst = worse(worst, refused.exit_code)
                app_ctx.terminal.notice(
                    f"stopped at line {number}; the lines after it were not read"
                )
                break
            code = _run_and_report(app_ctx, tree, number, raw, inherited)
            if code is None:
                continue  # a blank or comment line
            worst = worse(worst, code)
            if code == ExitCode.INTERRUPTED:
                app_ctx.terminal.notice(
                    f"interrupted at line {number}; the lines after it were not run"
                )
                break
            if code != ExitCode.OK and not keep_going:
                app_ctx.terminal.notice(
                    f"stopped after line {number} (exit {code}); "
                    "the lines after it were not run (--keep-going runs them)"
                )
                break
    if worst != ExitCode.OK:
        raise typer.Exit(worst)


# -- reading --------------------------------------------------------------------------------
def _open_source(file: Path | None, stack: ExitStack) -> Iterator[bytes | None]:
    if file is None or str(file) == "-":
        if stdin_is_tty():
            raise InvalidInput(
                "no commands given and stdin is a terminal",
                hint="use --file FILE, or pipe JSON lines to `vutf batch`",
            )
        return _lines(sys.stdin.buffer)
    try:
        return _lines(stack.enter_context(file.open("rb")))
    except OSError as exc:
        raise InvalidInput(f"cannot read batch file {file}: {exc.strerror}") from None


def _lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """The input's lines, each read with a bound: None for one longer than
    MAX_LINE_BYTES, after which nothing more is read (a stream without newlines,
    such as /dev/zero, is refused instead of read into memory whole).  A UTF-8
    byte order mark in front of the first line (Windows editors write one) is
    dropped."""
    line = stream.readline(MAX_LINE_BYTES + 1).removeprefix(codecs.BOM_UTF8)
    while line:
        if len(line) > MAX_LINE_BYTES:
            yield None
            return
        yield line
        line = stream.readline(MAX_LINE_BYTES + 1)


def _parse_line(raw: bytes) -> tuple[list[str], bytes] | None:
    """The args and stdin (as the bytes a pipe would carry) of one input line; None for a
    blank or comment line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the line is not valid UTF-8") from None
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    try:
        entry = parse_json(stripped)
    except JsonRefused as exc:
        if exc.colno is None:  # JSON, but not a command vutf reads (a key twice, ...)
            raise InvalidInput(f"the line is not a command: {exc.reason}") from None
        raise InvalidInput(f"the line is not JSON: {exc.reason} (column {exc.colno})") from None
    if not isinstance(entry, dict):
        raise InvalidInput('the line is not a JSON object such as {"args": ["users", "list"]}')
    unknown = sorted(set(entry) - _LINE_KEYS)
    if unknown:
        raise InvalidInput(
            f"unknown key {unknown[0]!r} in the line", hint='a line has "args" and may have "stdin"'
        )
    args = entry.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise InvalidInput('"args" must be a non-empty list of strings (the words after vutf)')
    stdin = entry.get("stdin", "")
    if not isinstance(stdin, str):
        raise InvalidInput('"stdin" must be a string')
    try:
        stdin_bytes = stdin.encode("utf-8")
    except UnicodeEncodeError:  # JSON can spell one ("\ud800"), no pipe can carry it
        raise InvalidInput(
            '"stdin" cannot contain a lone surrogate (text that is not Unicode)'
        ) from None
    command = _command_word(args)
    if command in REFUSED_COMMANDS:
        raise InvalidInput(f"{command} cannot run inside a batch")
    return args, stdin_bytes


def _command_word(args: list[str]) -> str | None:
    """The first word after the global options: the command group or command."""
    from vutf_cli.cli.app import hoist_global_options
    from vutf_cli.cli.root import GLOBAL_VALUE_OPTIONS

    hoisted = hoist_global_options(args)
    i = 0
    while i < len(hoisted):
        arg = hoisted[i]
        if arg == "--":
            return hoisted[i + 1] if i + 1 < len(hoisted) else None
        if arg in GLOBAL_VALUE_OPTIONS:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return arg
    return None


def _inherited_args(options: GlobalOptions) -> list[str]:
    """The global options given to `batch` itself, as words in front of every line.

    Not -o/--json: the batch's own output is its results; each line is JSON
    unless it asks otherwise.
    """
    words: list[str] = []
    if options.database_url is not None:
        words += ["--database-url", options.database_url]
    if options.actor is not None:
        words += ["--actor", options.actor]
    flags = (
        ("--yes", options.yes),
        ("--quiet", options.quiet),
        ("--no-color", options.no_color),
        ("--debug", options.debug),
    )
    words += [flag for flag, given in flags if given]
    return words


# -- running one line -----------------------------------------------------------------------
def _run_and_report(
    app_ctx: AppContext, tree: "CommandTree", number: int, raw: bytes, inherited: list[str]
) -> int | None:
    """Run one input line and deliver its result; its exit code (None: nothing to run)."""
    try:
        parsed = _parse_line(raw)
    except InvalidInput as exc:
        result = _refusal(number, exc)
    else:
        if parsed is None:
            return None
        args, stdin = parsed
        result = _run_line(tree, number, inherited + args, stdin)
    _deliver(app_ctx, result)
    code: int = result["exit_code"]
    return code


def _refusal(number: int, error: InvalidInput) -> dict[str, Any]:
    """The result of a line that could not be run, its error in the one JSON error shape."""
    from vutf_cli.output import Terminal

    err = io.StringIO()
    error.message = f"line {number}: {error.message}"
    Terminal(output_format="json", stderr=err).error(error)
    return {"line": number, "exit_code": int(error.exit_code), **_stderr_fields(err.getvalue())}


def _run_line(tree: "CommandTree", number: int, args: list[str], stdin: bytes) -> dict[str, Any]:
    """``vutf ARGS`` through the entry point, its streams captured; its result object.

    Run by the command tree batch itself runs in (built once per process).
    """
    from vutf_cli.cli.app import run

    out, err = io.BytesIO(), io.BytesIO()
    streams = (
        io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"),
        _capture(out),
        _capture(err),
    )
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        code = run(args, within=WITHIN, tree=tree)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        for stream in streams:
            # Detached, not closed: a wrapper closes its buffer when collected.
            stream.flush()
            stream.detach()
    result: dict[str, Any] = {"line": number, "exit_code": code}
    result.update(_stdout_fields(out.getvalue().decode("utf-8", "replace")))
    result.update(_stderr_fields(err.getvalue().decode("utf-8", "replace")))
    return result


def _capture(buffer: io.BytesIO) -> io.TextIOWrapper:
    # A text stream with a .buffer, as sys.stdout has: exports write bytes to it.
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="replace", write_through=True)


def _stdout_fields(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        return {"result": json.loads(text)}
    except ValueError:
        return {"stdout": text}  # a table, JSON lines, a raw output


def _stderr_fields(text: str) -> dict[str, Any]:
    """The JSON error object (the last line with -o json) apart from other messages."""
    lines = text.splitlines()
    fields: dict[str, Any] = {}
    if lines:
        try:
            last = json.loads(lines[-1])
        except ValueError:
            last = None
        if isinstance(last, dict) and isinstance(last.get("error"), dict):
            fields["error"] = last["error"]
            lines.pop()
    rest = "\n".join(lines)
    if rest.strip():
        fields["stderr"] = rest + "\n"
    return fields


# -- delivering a result ----------------------------------------------------------------------
def _deliver(app_ctx: AppContext, result: dict[str, Any]) -> None:
    """Write one result line; a lost one-time secret is exit 9, else a closed pipe stops quietly."""
    from vutf_cli.cli.secret_delivery import stdout_failure

    terminal = app_ctx.terminal
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n"
    if not _carries_secret(result):
        # A closed pipe is PipeClosed here: the batch stops, as a listing does.
        terminal.stdout.write(text)
        terminal.stdout.flush()
        return
    reason = stdout_failure(terminal, lambda: terminal.stdout.write(text))
    if reason is not None:
        raise SecretNotDelivered(
            f"the result of line {result['line']} was not delivered ({reason}); "
            "its command ran, and the one-time secret it printed is lost",
            hint="revoke or replace what that line created (see `vutf audit list`)",
        )


def _carries_secret(result: dict[str, Any]) -> bool:
    """Whether a result may hold a one-time secret (a generated password, a new key)."""
    if result["exit_code"] != ExitCode.OK:
        return False
    if "stdout" in result:
        return True  # plain output of a successful line: a key is printed bare
    value = result.get("result")
    if not isinstance(value, dict):
        return False
    from vutf_cli.services.audit_trail import scrub_secrets

    # The audit log's own notion of a secret-named field, at the top level
    # where users create and keys create/rotate print theirs.
    return len(scrub_secrets(value)) != len(value)
