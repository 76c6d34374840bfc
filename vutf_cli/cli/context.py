"""What every command shares: resolved settings, the terminal, the database.

``AppContext`` lives in ``ctx.obj``.  Everything in it is built lazily so that
``--help``, ``--version`` and shell completion never load settings files,
SQLAlchemy or argon2.  The secret-input helpers here are the only way a
command obtains a password or key: never from argv.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vutf_cli.errors import ExitCode, InvalidInput, VutfError

if TYPE_CHECKING:
    from vutf_cli.output import Terminal
    from vutf_cli.services.runtime import Runtime
    from vutf_cli.settings import Settings


class Cancelled(VutfError):
    """The operator declined a confirmation."""

    exit_code = ExitCode.INTERRUPTED
    code = "cancelled"


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
    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self._settings: Settings | None = None
        self._terminal: Terminal | None = None
        self._runtime: Runtime | None = None

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

    def runtime(self, *, check_schema: bool = True) -> Runtime:
        """The services' entry point, with the schema verified to be at head."""
        if self._runtime is None:
            from vutf_cli.services.runtime import Runtime

            self._runtime = Runtime(self.settings)
        if check_schema:
            self._runtime.ensure_schema()
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()

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
    fmt = options.output or os.environ.get("VUTF_OUTPUT") or "table"
    return fmt if fmt in ("table", "json", "jsonl", "csv") else "table"


def get_app(ctx: typer.Context) -> AppContext:
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = AppContext(GlobalOptions())
    return root.obj


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
