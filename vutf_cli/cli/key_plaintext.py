"""Showing a newly issued key exactly once: on stdout, or only in a new file of mode 0600.

Used by `vutf keys create` and `vutf keys rotate`.  The plaintext key is
printed in the table under a "store it now" title (plus a warning on
stderr), as the ``key`` field of the JSON object, or, with ``--secret-file
PATH``, only into a new file of mode 0600 (then stdout carries the metadata
and a ``secret_file`` field instead of ``key``).  An existing PATH is never
overwritten (exit 4).

The key exists nowhere else, so it is delivered or the command fails
(docs/architecture.md §3.4): a file is written whole and synced, stdout is
written and flushed (:mod:`vutf_cli.cli.secret_delivery`).  When that
fails, :class:`KeyDelivery` raises
:class:`~vutf_cli.errors.SecretNotDelivered` (exit 9) naming the key that
was created, how to revoke or replace it and, for a rotation, that the old
key still works; a partly written secret file is removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from vutf_cli.cli.context import AppContext
from vutf_cli.cli.key_options import DETAIL_FIELDS, key_record
from vutf_cli.cli.secret_delivery import stdout_failure
from vutf_cli.errors import Conflict, InvalidInput, SecretNotDelivered
from vutf_cli.security.private_paths import PRIVATE_FILE_MODE, create_private_file

if TYPE_CHECKING:
    from vutf_cli.services.keys import IssuedKey

__all__ = ["SECRET_FILE_MODE", "STORE_IT_NOW", "KeyDelivery", "SecretFile"]

STORE_IT_NOW = "store it now, it will not be shown again"
SECRET_FILE_MODE = PRIVATE_FILE_MODE


# -- the secret file ----------------------------------------------------------------------
class SecretFile:
    """A file created exclusively (O_EXCL, mode 0600) before the key exists.

    Created first so that a bad path fails before any key is issued; removed
    again if issuing fails, so no empty file is left behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().absolute()
        try:
            # 0600 whatever the umask; O_EXCL and O_NOFOLLOW: nothing there is opened.
            self._fd = create_private_file(self.path)
        except FileExistsError:
            raise Conflict(
                f"{self.path} already exists; a key is only written to a new file",
                hint="choose another path, or remove the old file first",
            ) from None
        except OSError as exc:
            raise InvalidInput(f"cannot create secret file {self.path}: {exc.strerror}") from None

    def write(self, secret: str) -> None:
        """Write ``secret`` whole and sync it; on any failure remove the file and raise OSError."""
        try:
            try:
                data = (secret + "\n").encode("utf-8")
                while data:
                    data = data[os.write(self._fd, data) :]
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
        except OSError:
            # A partial key is no key: leave nothing that looks like one.
            self.path.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


class KeyDelivery:
    """Where a new key goes, and the one way it gets there.

    Made before the key is issued (a bad ``--secret-file`` fails first), used
    as a context manager around issuing (the secret file is removed again if
    issuing fails), called with the issued key to deliver it (a service's
    ``deliver`` callback, or right after issuing), then :meth:`report` shows
    the rest once the command has succeeded.
    """

    def __init__(self, app_ctx: AppContext, secret_file: Path | None, *, verb: str) -> None:
        self._app = app_ctx
        self._verb = verb
        self.target = SecretFile(secret_file) if secret_file is not None else None
        self._delivered = False

    def __enter__(self) -> KeyDelivery:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and self.target is not None and not self._delivered:
            self.target.discard()

    def __call__(self, issued: IssuedKey) -> None:
        """Deliver the plaintext of ``issued``: SecretNotDelivered if it was not written whole."""
        if self.target is not None:
            self._delivered = True  # whatever happens now, the file is dealt with
            try:
                self.target.write(issued.plaintext)
            except OSError as exc:
                raise self._not_delivered(issued, str(self.target.path), exc.strerror) from None
            return
        record = self._record(issued, {"key": issued.plaintext})
        title = f"API key {self._verb}: {STORE_IT_NOW}"
        terminal = self._app.terminal
        reason = stdout_failure(terminal, lambda: terminal.emit_object(record, title=title))
        if reason is not None:
            raise self._not_delivered(issued, "stdout", reason)
        self._delivered = True

    def report(self, issued: IssuedKey) -> None:
        """What follows a delivered key: the metadata (with --secret-file), the warning."""
        terminal = self._app.terminal
        if self.target is None:
            if terminal.is_table:
                terminal.warning(f"this is the only time the key is shown: {STORE_IT_NOW}")
            return
        record = self._record(issued, {"secret_file": str(self.target.path)})
        title = f"API key {self._verb}; the key is in secret_file (mode 0600)"
        terminal.emit_object(record, title=title)
        if terminal.is_table:
            terminal.notice(f"key written to {self.target.path}")

    def _record(self, issued: IssuedKey, secret: dict[str, Any]) -> dict[str, Any]:
        view = issued.api_key
        replaced = issued.replaced
        extra: dict[str, Any] = {}
        if replaced is not None:
            extra = {
                "replaced_key_id": replaced.id,
                "replaced_key_name": replaced.name,
                "replaced_key_expires_at": issued.replaced_ends_at,
            }
        if self._app.terminal.is_table:
            return {**secret, **{name: getattr(view, name) for name in DETAIL_FIELDS}, **extra}
        return {**secret, **key_record(view), **extra}

    @staticmethod
    def _not_delivered(issued: IssuedKey, where: str, reason: str | None) -> SecretNotDelivered:
        prefix = issued.api_key.key_prefix
        message = f"API key {prefix} was created but could not be written to {where}: {reason}"
        hint = (
            f"revoke it (vutf keys revoke {prefix}) or replace it by a key written to a file "
            f"(vutf keys rotate {prefix} --secret-file PATH)"
        )
        if issued.replaced is not None:
            old = issued.replaced.key_prefix
            message += f"; the old key {old} still works"
            hint += f"; then end the old key: vutf keys revoke {old}"
        return SecretNotDelivered(message, hint=hint)
