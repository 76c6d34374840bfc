"""What every command shares: resolved settings, the terminal, the database.

``AppContext`` is created by the entry point and passed to Typer as ``obj``,
so it lives in the root ``ctx.obj``.  Everything in it is built lazily so that
``--help``, ``--version`` and shell completion never load settings files,
SQLAlchemy or argon2.  The secret-input helpers here are the only way a
command obtains a password or key: never from argv.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vutf_cli.errors import ExitCode, InvalidInput, VutfError
from vutf_cli.output_formats import DEFAULT_OUTPUT_FORMAT, OUTPUT_FORMATS
from vutf_cli.settings import ENV_OUTPUT

if TYPE_CHECKING:
    from vutf_cli.domain.invocation import Invocation
    from vutf_cli.output import Terminal
    from vutf_cli.services.audit_trail import Database
    from vutf_cli.settings import Settings


class Cancelled(VutfError):
    """The operator declined a confirmation."""

    exit_code = ExitCode.INTERRUPTED
    code = "cancelled"


class MissingCommand(InvalidInput):
    """A group (or the root) was invoked without a command.

    On a terminal the entry point shows ``usage_help`` (the group's help) on
    stderr instead of the one-line error; with -o json|jsonl it is the usual
    JSON error object.
    """

    def __init__(self, *, hint: str, usage_help: str) -> None:
        super().__init__("missing command", hint=hint)
        self.usage_help = usage_help


@dataclass
class GlobalOptions:
    database_url: str | None = None
    output: str | None = None
    actor: str | None = None
    yes: bool = False
    quiet: bool = False
    no_color: bool = False
    debug: bool = False

    def as_flags(self) -> dict[str, Any]:
        """Only what was given on the command line (None/False mean "not given")."""
        return {
            "database_url": self.database_url,
            "output": self.output,
            "actor": self.actor,
            "yes": self.yes or None,
            "quiet": self.quiet or None,
            "no_color": self.no_color or None,
            "debug": self.debug or None,
        }


class AppContext:
    """Created by the entry point and handed to Typer as ``obj``; see :func:`get_app`."""

    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self._settings: Settings | None = None
        self._terminal: Terminal | None = None
        self._database: Database | None = None
        # The context of the command being run, for the audit rows' metadata.
        self._command_context: typer.Context | None = None

    def configure(self, options: GlobalOptions) -> None:
        """Adopt the global options as parsed (the root callback calls this).

        Until then ``options`` holds the entry point's best-effort reading of
        argv, so that an error raised while parsing is still reported in the
        requested output format.
        """
        self.options = options
        self._settings = None
        self._terminal = None

    def enter_command(self, ctx: typer.Context) -> None:
        """Remember the command being run (its path and options go into audit metadata)."""
        self._command_context = ctx

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from vutf_cli.settings import load_settings

            self._settings = load_settings(self.options.as_flags())
        return self._settings

    @property
    def terminal(self) -> Terminal:
        if self._terminal is None:
            from vutf_cli.output import Terminal

            try:
                settings = self.settings
                fmt, no_color, quiet = settings.output, settings.no_color, settings.quiet
            except VutfError:
                # Settings are broken; still report errors in the requested format.
                fmt = fallback_output_format(self.options)
                no_color, quiet = self.options.no_color, self.options.quiet
            self._terminal = Terminal(output_format=fmt, no_color=no_color, quiet=quiet)
        return self._terminal

    def raw_output_format(self, honoured: Collection[str], *, prints: str) -> str:
        """The format of a raw output (docs/architecture.md §5.3): its plain form unless asked.

        A raw output (a line, a script, an export) is fed to other programs, so
        the format configured in ``VUTF_OUTPUT`` or the config file does not
        apply: only ``-o``/``--json`` on the command line does.  Returns
        "table" (the plain form) or the explicit format if it is in
        ``honoured``; any other explicit format is exit 2, never ignored.
        """
        flag = self.options.output
        if flag is None or flag == "table" or flag in honoured:
            return flag or "table"
        command = "" if self._command_context is None else self._command_context.command_path
        raise InvalidInput(
            f"{command.partition(' ')[2] or command} prints {prints}; "
            f"-o {flag} is not supported here",
            hint="run it without -o/--json",
        )

    def database(self, *, check_schema: bool = True) -> Database:
        """What the services work on: one Database per command, built on first use.

        With ``check_schema`` (the default) the schema is verified to be at
        head first (exit 8 otherwise; the embedded default database is
        migrated).  Its audit rows record the command being run.
        """
        if self._database is None:
            from vutf_cli.services.audit_trail import database_for

            invocation = None
            if self._command_context is not None:
                invocation = invocation_of(self._command_context)
            self._database = database_for(self.settings, invocation)
        if check_schema:
            self._database.ensure_schema()
        return self._database

    def close(self) -> None:
        if self._database is not None:
            self._database.dispose()

    # -- interaction -----------------------------------------------------------
    def confirm(self, question: str) -> None:
        """Ask on a TTY; without one, require --yes (never wait for input)."""
        if self.settings.yes:
            return
        if not stdin_is_tty():
            raise InvalidInput(
                f"confirmation required: {question}",
                hint="re-run with --yes to confirm non-interactively",
            )
        if not typer.confirm(question, default=False, err=True):
            raise Cancelled("cancelled; nothing was changed")


def fallback_output_format(options: GlobalOptions) -> str:
    fmt = options.output or os.environ.get(ENV_OUTPUT) or DEFAULT_OUTPUT_FORMAT
    return fmt if fmt in OUTPUT_FORMATS else DEFAULT_OUTPUT_FORMAT


def get_app(ctx: typer.Context) -> AppContext:
    """The ``AppContext`` of the command line being run (the root context's ``obj``).

    Made on the spot when the application was invoked without one (a test
    calling the Typer app directly rather than the entry point).
    """
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = AppContext(GlobalOptions())
    root.obj.enter_command(ctx)
    return root.obj


def invocation_of(ctx: typer.Context) -> Invocation:
    """The command path and the names of the options typed, never their values.

    What the audit rows record about the command line (docs/architecture.md
    §3.2): values may hold secrets (a URL with a password, say), and the
    audit log is append-only.  Only options given on the command line count,
    not those from the environment or a config file; global options first.
    """
    from vutf_cli.domain.invocation import Invocation

    # Any: the parents are typed as the Click Context that Typer vendors privately.
    chain: list[Any] = []
    current: Any = ctx
    while current is not None:
        chain.append(current)
        current = current.parent
    chain.reverse()
    names: list[str] = []
    for context in chain:
        for param in context.command.params:
            if param.param_type_name != "option" or param.name is None:
                continue
            source = context.get_parameter_source(param.name)
            # Compared by name: Click's ParameterSource lives in Typer's private vendored copy.
            if source is None or source.name != "COMMANDLINE":
                continue
            off = param.secondary_opts and not context.params.get(param.name)
            spellings = param.secondary_opts if off else param.opts
            name = next((s for s in spellings if s.startswith("--")), spellings[0])
            if name not in names:
                names.append(name)
    path = " ".join(str(context.info_name) for context in chain[1:])  # not the program name
    return Invocation(path or None, tuple(names))


def stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, AttributeError):
        return False


def _strip_one_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def read_secret(
    *,
    what: str,
    from_stdin: bool,
    from_file: Path | None,
    confirm: bool,
    stdin_flag: str = "--password-stdin",
    file_flag: str = "--password-file",
) -> str:
    """A secret from stdin, a file, or a hidden prompt; never from argv.

    Exactly one trailing newline is removed (what ``echo`` and editors add);
    anything else is part of the secret.
    """
    if from_stdin and from_file is not None:
        raise InvalidInput(f"use either {stdin_flag} or {file_flag}, not both")
    if from_stdin:
        try:
            secret = _strip_one_newline(sys.stdin.read())
        except UnicodeDecodeError:
            raise InvalidInput(f"the {what} on stdin is not valid UTF-8") from None
    elif from_file is not None:
        try:
            raw = from_file.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {what} file {from_file}: {exc.strerror}") from None
        try:
            secret = _strip_one_newline(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"{what} file {from_file} is not valid UTF-8") from None
    elif stdin_is_tty():
        value = typer.prompt(
            what[:1].upper() + what[1:], hide_input=True, confirmation_prompt=confirm, err=True
        )
        secret = str(value)
    else:
        raise InvalidInput(
            f"no {what} given and stdin is not a terminal",
            hint=f"use {stdin_flag} (e.g. `... {stdin_flag} < file`) or {file_flag} PATH",
        )
    if secret == "":
        raise InvalidInput(f"empty {what}")
    return secret
