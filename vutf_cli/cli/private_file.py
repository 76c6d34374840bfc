"""Where an ``--output-file`` goes: a regular file of mode 0600, or an existing stream.

Used by `vutf audit export --output-file`: an export is the audit log, which
must not become readable by every local user on its way out.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from vutf_cli.errors import Conflict, InvalidInput

PRIVATE_FILE_MODE = 0o600


@contextlib.contextmanager
def private_file(path: Path, *, force: bool) -> Iterator[TextIO]:
    """``path`` opened for writing text: a regular file of mode 0600, or an existing stream.

    A new file is created 0600; an existing regular file is replaced only with
    ``force`` (truncated and made 0600), and either is removed if writing
    fails.  An existing device or FIFO (``/dev/null``, ``/dev/stdout`` on a
    pipe, a named pipe) holds nothing to overwrite: it is written as it is,
    never chmod-ed or removed; run as root, doing either would break the
    machine for everybody else.
    """
    fd, owned = _open_output_file(path, force=force)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
    except BaseException:
        if owned:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def _open_output_file(path: Path, *, force: bool) -> tuple[int, bool]:
    """The open descriptor, and whether it is a regular file vutf may make private or remove."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        fd = _open_existing(path, force=force)
    except OSError as exc:
        raise InvalidInput(f"cannot create {path}: {exc.strerror}") from None
    else:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # the mode given to open() is filtered by the umask
        return fd, True
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return fd, False
    if not force:  # it became a regular file after the check in _open_existing
        os.close(fd)
        raise _exists(path)
    os.ftruncate(fd, 0)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # an overwritten file keeps its old mode otherwise
    return fd, True


def _open_existing(path: Path, *, force: bool) -> int:
    """Open what is at ``path``: no O_CREAT or O_TRUNC, nothing changes before its type is known."""
    with contextlib.suppress(OSError):
        if not force and stat.S_ISREG(os.stat(path).st_mode):
            raise _exists(path)
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None


def _exists(path: Path) -> Conflict:
    return Conflict(
        f"{path} already exists; nothing was written", hint="use --force to overwrite it"
    )
