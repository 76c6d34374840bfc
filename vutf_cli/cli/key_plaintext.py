"""Showing a newly issued key exactly once: on stdout, or only in a new file of mode 0600.

Used by `vutf keys create` and `vutf keys rotate`.  The plaintext key is
printed in the table under a "store it now" title (plus a warning on
stderr), as the ``key`` field of the JSON object, or, with ``--secret-file
PATH``, only into a new file of mode 0600 (then stdout carries the metadata
and a ``secret_file`` field instead of ``key``).  An existing PATH is never
overwritten (exit 4).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vutf_cli.cli.context import AppContext
from vutf_cli.cli.key_options import DETAIL_FIELDS, key_record
from vutf_cli.errors import Conflict, InternalError, InvalidInput

if TYPE_CHECKING:
    from vutf_cli.services.keys import IssuedKey

__all__ = ["SECRET_FILE_MODE", "STORE_IT_NOW", "SecretFile", "emit_issued", "issue_once"]

STORE_IT_NOW = "store it now, it will not be shown again"
SECRET_FILE_MODE = 0o600


# -- the secret file ----------------------------------------------------------------------
class SecretFile:
    """A file created exclusively (O_EXCL, mode 0600) before the key exists.

    Created first so that a bad path fails before any key is issued; removed
    again if issuing fails, so no empty file is left behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().absolute()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.path, flags, SECRET_FILE_MODE)
        except FileExistsError:
            raise Conflict(
                f"{self.path} already exists; a key is only written to a new file",
                hint="choose another path, or remove the old file first",
            ) from None
        except OSError as exc:
            raise InvalidInput(f"cannot create secret file {self.path}: {exc.strerror}") from None
        # The mode given to open() is filtered by the umask; make it exact.
        os.fchmod(self._fd, SECRET_FILE_MODE)

    def write(self, secret: str) -> None:
        try:
            data = (secret + "\n").encode("utf-8")
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        finally:
            os.close(self._fd)

    def discard(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


def issue_once(
    secret_file: Path | None, issue: Callable[[], IssuedKey]
) -> tuple[IssuedKey, SecretFile | None]:
    """The key ``issue`` issues, and the new secret file it was written to (if one was asked)."""
    target = SecretFile(secret_file) if secret_file is not None else None
    try:
        issued = issue()
    except BaseException:
        if target is not None:
            target.discard()
        raise
    if target is not None:
        try:
            target.write(issued.plaintext)
        except OSError as exc:
            prefix = issued.api_key.key_prefix
            raise InternalError(
                f"API key {prefix} was issued, but writing it to {target.path} failed: "
                f"{exc.strerror}",
                hint=f"revoke it (vutf keys revoke {prefix}) and try again",
            ) from None
    return issued, target


def emit_issued(
    app_ctx: AppContext,
    issued: IssuedKey,
    target: SecretFile | None,
    *,
    verb: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Show the issued key once: its plaintext on stdout, or where the secret file is."""
    terminal = app_ctx.terminal
    view = issued.api_key
    extra = dict(extra or {})
    if target is None:
        secret: dict[str, Any] = {"key": issued.plaintext}
        title = f"API key {verb}: {STORE_IT_NOW}"
    else:
        secret = {"secret_file": str(target.path)}
        title = f"API key {verb}; the key is in secret_file (mode 0600)"
    if terminal.output_format == "table":
        record = {**secret, **{name: getattr(view, name) for name in DETAIL_FIELDS}, **extra}
        terminal.emit_object(record, title=title)
        if target is None:
            terminal.warning(f"this is the only time the key is shown: {STORE_IT_NOW}")
        else:
            terminal.notice(f"key written to {target.path}")
    else:
        terminal.emit_object({**secret, **key_record(view), **extra})
