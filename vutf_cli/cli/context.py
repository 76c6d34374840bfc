"""What every command shares: resolved settings, the terminal, the database.

``AppContext`` is created by the entry point and passed to Typer as ``obj``,
so it lives in the root ``ctx.obj``.  Everything in it is built lazily so that
``--help``, ``--version`` and shell completion never load settings files,
SQLAlchemy or argon2.  The secret-input helpers here are the only way a
command obtains a password or key: never from argv.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typer

from vutf_cli.errors import ExitCode, InvalidInput, VutfError
from vutf_cli.output_formats import DEFAULT_OUTPUT_FORMAT, OUTPUT_FORMATS
from vutf_cli.settings import ENV_OUTPUT, ENV_TIMEZONE

if TYPE_CHECKING:
    from vutf_cli.domain.invocation import Invocation
    from vutf_cli.output import Column, Terminal
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

    def __init__(self, options: GlobalOptions, *, within: str | None = None) -> None:
        self.options = options
        # The command that runs this one inside its own process (``batch``),
        # or None for a command line of its own; see :func:`vutf_cli.cli.app.run`.
        self.within = within
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
        self.apply_time_zone()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from vutf_cli.settings import load_settings

            flags = self.options.as_flags()
            if self.within is not None and flags["output"] is None:
                # A command run by another (a batch line) is read by a program:
                # JSON unless its own line asks otherwise; VUTF_OUTPUT and the
                # config file are for people.  Raw outputs keep their plain form.
                flags["output"] = "json"
            self._settings = load_settings(flags)
        return self._settings

    def apply_time_zone(self) -> None:
        """Choose this command's zone from VUTF_TIMEZONE (exit 2 for an unknown one).

        It is how tables show times and what a TIME typed without a zone means
        (:mod:`vutf_cli.domain.time_input`); json, jsonl and csv stay UTC.
        """
        from vutf_cli.domain import time_input

        name = os.environ.get(ENV_TIMEZONE)
        time_input.use_zone(None if name is None else time_input.parse_zone(name))

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
                if self.within is not None and self.options.output is None:
                    fmt = "json"  # as the settings above would have said
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
        if flag is None or flag == "table" or flag == "wide":
            return "table"  # -o wide is a table too: the plain form
        if flag in honoured:
            return flag
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
                invocation = invocation_of(self._command_context, within=self.within)
            self._database = database_for(self.settings, invocation)
            terminal = self.terminal
            if terminal.stderr_is_tty and not self.settings.quiet:
                # Retries are visible on a terminal; a script gets the final
                # error, which says how many attempts were made.
                self._database.policy = dataclasses.replace(
                    self._database.policy, on_retry=self._show_retry
                )
        if check_schema:
            self._database.ensure_schema()
            if self._database.created_default:
                # Said once: the next command finds the schema there.  A
                # warning, shown with -q: it is the one sign that a script
                # lost its VUTF_DATABASE_URL and is working on a new database.
                self._database.created_default = False
                self.terminal.warning(
                    f"created the default database {database_target(self.settings)}"
                )
        return self._database

    def emit_change(self, obj: Any, *, fields: Collection[str] | None = None) -> None:
        """Render what a mutation returned (after its summary line): see Terminal.emit_change."""
        self.terminal.emit_change(
            obj,
            fields=list(fields) if fields is not None else None,
            target=database_target(self.settings),
        )

    def emit_changed_rows(self, rows: Iterable[Any], *, columns: Sequence[Column]) -> None:
        """As :meth:`emit_change`, for several records: see Terminal.emit_changed_rows."""
        self.terminal.emit_changed_rows(
            rows, columns=columns, target=database_target(self.settings)
        )

    def _show_retry(self, notice: Any) -> None:
        """One line on stderr, rewritten in place for each retry and erased when they end.

        ``notice`` is a ``vutf_cli.db.retry.RetryNotice``, or None when the
        retries are over (typed loosely: the command line does not import db).
        """
        import shutil

        from vutf_cli.output.sanitize import inert

        err = self.terminal.stderr
        if notice is None:
            err.write("\r\x1b[K")
        else:
            what = "busy" if notice.busy else "unreachable"
            # The numbers first: the reason is what a narrow terminal cuts.
            line = inert(
                f"retrying: attempt {notice.attempt} failed, next in {notice.next_in:.1f} s, "
                f"gives up in {notice.gives_up_in:.0f} s: database {what} ({notice.reason})"
            )
            # One physical line, or "\r" would rewrite only the last of several.
            width = max(shutil.get_terminal_size().columns - 1, 20)
            if len(line) > width:
                line = line[: width - 1] + "…"
            err.write("\r\x1b[K" + line)
        err.flush()

    def close(self) -> None:
        if self._terminal is not None:
            self._terminal.close()  # wait for the pager, if one shows the output
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
        # Asked as text and read here: typer.confirm answers an unknown reply
        # with Click's own "Error: invalid input", beside vutf's "error:" style.
        while True:
            answer = typer.prompt(f"{question} [y/N]", default="", show_default=False, err=True)
            reply = str(answer).strip().lower()
            if reply in ("y", "yes"):
                return
            if reply in ("", "n", "no"):
                raise Cancelled("cancelled; nothing was changed")
            _prompt_error(InvalidInput(f"answer y or n (got {str(answer).strip()[:20]!r})"))

    def required_value(self, value: str | None, *, option: str, label: str) -> str:
        """A required option's value: asked for on a terminal when missing, else exit 2.

        Never a wait for input without a terminal: a script that forgot the
        option gets the usual one-line error.
        """
        if value is not None:
            return value
        if not stdin_is_tty():
            raise InvalidInput(
                f"missing option {option}", hint=f"give {option} (it is asked for on a terminal)"
            )
        for attempt in range(1, PROMPT_ATTEMPTS + 1):
            answer = str(typer.prompt(label, default="", show_default=False, err=True)).strip()
            if answer:
                return answer
            if attempt < PROMPT_ATTEMPTS:  # the last refusal is the command's error
                _prompt_error(InvalidInput(f"{option} must not be empty"))
        raise InvalidInput(f"missing option {option}", hint=f"{label}: nothing was given")


def database_target(settings: Settings) -> str:
    """The database a command works on, as messages name it: a SQLite file's path, else the
    masked URL (no password)."""
    masked = settings.masked_url
    if masked.startswith("sqlite:///") and masked != "sqlite:///:memory:":
        return masked.removeprefix("sqlite:///").partition("?")[0]
    return masked


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


def invocation_of(ctx: typer.Context, *, within: str | None = None) -> Invocation:
    """The command path and the names of the options typed, never their values.

    What the audit rows record about the command line (docs/architecture.md
    §3.2): values may hold secrets (a URL with a password, say), and the
    audit log is append-only.  Only options given on the command line count,
    not those from the environment or a config file; global options first.
    A command run ``within`` another (``batch``) has that command's name in
    front of its path: ``batch users create``.
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
    if path and within is not None:
        path = f"{within} {path}"
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


# How many times a prompt asks again after an unusable answer (then exit 2).
PROMPT_ATTEMPTS = 3


def _prompt_error(error: InvalidInput) -> None:
    """An answer at a prompt was refused: say why in vutf's style, then ask again."""
    text = f"error: {error.message}\n"
    if error.hint:
        text += f"hint: {error.hint}\n"
    sys.stderr.write(text)
    sys.stderr.flush()


def _prompt_secret(what: str, *, confirm: bool, check: Callable[[str], None] | None) -> str:
    """A hidden prompt; a new secret is checked before it is asked for again to confirm.

    Up to :data:`PROMPT_ATTEMPTS` tries: a secret the policy refuses, or a
    confirmation that differs, is reported and asked for again; then the
    last refusal is the error (exit 2).  Click's own confirmation prompt is
    not used: it would ask to confirm a password the policy then refuses,
    and reports a mismatch as "Error: ...".
    """
    label = what[:1].upper() + what[1:]
    for attempt in range(1, PROMPT_ATTEMPTS + 1):
        secret = str(typer.prompt(label, hide_input=True, err=True))
        try:
            if check is not None:
                check(secret)
            if confirm:
                # Click's wording, which people (and scripts driving a pty) know.
                again = str(typer.prompt("Repeat for confirmation", hide_input=True, err=True))
                if again != secret:
                    raise InvalidInput(f"the two {what}s do not match")
        except InvalidInput as exc:
            if attempt == PROMPT_ATTEMPTS:
                raise  # the entry point reports the last refusal, once
            _prompt_error(exc)
            continue
        return secret
    raise AssertionError("unreachable")


# What read_secret reads at most (characters from stdin, bytes from a file):
# far beyond any password (security.passwords.MAX_LENGTH) or key it is used for.
SECRET_READ_LIMIT: Final = 64 * 1024


def _too_long(source: str, unit: str) -> str:
    return f"{source} is longer than {SECRET_READ_LIMIT} {unit}: not a password or key"


def read_secret(
    *,
    what: str,
    from_stdin: bool,
    from_file: Path | None,
    confirm: bool,
    stdin_flag: str = "--password-stdin",
    file_flag: str = "--password-file",
    check: Callable[[str], None] | None = None,
) -> str:
    """A secret from stdin, a file, or a hidden prompt; never from argv.

    Exactly one trailing newline is removed (what ``echo`` and editors add);
    anything else is part of the secret.  ``stdin_flag`` with stdin on a
    terminal is the hidden prompt: reading the terminal as a file would echo
    the secret.  ``check`` (the password policy) vets a prompted secret
    before its confirmation; the services check every secret anyway.
    """
    if from_stdin and from_file is not None:
        raise InvalidInput(f"use either {stdin_flag} or {file_flag}, not both")
    if from_stdin and stdin_is_tty():
        return _prompt_secret(what, confirm=confirm, check=check)
    if from_stdin:
        try:
            # Bounded: stdin may never end (/dev/zero, a runaway producer).
            text = sys.stdin.read(SECRET_READ_LIMIT + 1)
        except UnicodeDecodeError:
            raise InvalidInput(f"the {what} on stdin is not valid UTF-8") from None
        if len(text) > SECRET_READ_LIMIT:
            raise InvalidInput(_too_long(f"the {what} on stdin", "characters"))
        secret = _strip_one_newline(text)
    elif from_file is not None:
        try:
            with from_file.open("rb") as handle:
                raw = handle.read(SECRET_READ_LIMIT + 1)
        except OSError as exc:
            raise InvalidInput(f"cannot read {what} file {from_file}: {exc.strerror}") from None
        if len(raw) > SECRET_READ_LIMIT:
            raise InvalidInput(_too_long(f"{what} file {from_file}", "bytes"))
        try:
            secret = _strip_one_newline(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"{what} file {from_file} is not valid UTF-8") from None
    elif stdin_is_tty():
        secret = _prompt_secret(what, confirm=confirm, check=check)
    else:
        raise InvalidInput(
            f"no {what} given and stdin is not a terminal",
            hint=f"use {stdin_flag} (e.g. `... {stdin_flag} < file`) or {file_flag} PATH",
        )
    if secret == "":
        raise InvalidInput(f"empty {what}")
    return secret
