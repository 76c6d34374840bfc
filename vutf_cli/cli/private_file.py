"""Where an ``--output-file`` goes: a private file replaced atomically, or an existing stream.

Used by every export's ``--output-file`` (`vutf audit export`, `vutf users
export`), whose options are defined once here: an export is the audit log or
the users (with --include-hashes, their password hashes), which must not
become readable by every local user on its way out, and an export that fails
half way (full disk, Ctrl-C, SIGTERM) must not cost the previous export
(docs/architecture.md §3.6).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TextIO

import typer

from vutf_cli.errors import Conflict, InvalidInput, OutputFileFailed
from vutf_cli.security.private_paths import create_private_temporary_file

OutputFileOption = Annotated[
    Path | None,
    typer.Option(
        "--output-file",
        metavar="FILE",
        help="Write to FILE (a new file gets mode 0600) instead of stdout.",
        dir_okay=False,
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite an existing --output-file.")]

# File systems without hard links (FAT, some network and FUSE mounts) say so with these.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})


@contextlib.contextmanager
def private_file(path: Path, *, force: bool) -> Iterator[TextIO]:
    """``path`` opened for writing text: a private regular file, or an existing stream.

    A regular file is written to a temporary file of mode 0600 in the same
    folder, synced, and renamed to ``path`` only once everything was written;
    if anything fails (or Ctrl-C / SIGTERM arrives) the temporary file is
    removed and ``path`` is as it was.  An existing regular file is replaced
    only with ``force``.  A symbolic link is refused: following it would let
    whoever planted it choose what gets overwritten.  An existing device or
    FIFO (``/dev/null``, a named pipe) holds nothing to overwrite: it is
    written as it is, never chmod-ed, truncated or removed; run as root,
    doing either would break the machine for everybody else.
    """
    stream = _open_stream(path, force=force)
    if stream is None:
        with _replacement(path, force=force) as handle:
            yield handle
        return
    handle = os.fdopen(stream, "w", encoding="utf-8", newline="")
    try:
        yield handle
        handle.close()
    except BaseException as exc:
        with contextlib.suppress(OSError):
            handle.close()
        _raise_if_write_error(exc, path, "")
        raise


def _open_stream(path: Path, *, force: bool) -> int | None:
    """An open descriptor if ``path`` is an existing device or FIFO; None for a regular file.

    None also when nothing is at ``path``.  Refuses symbolic links and folders
    (exit 2), and an existing regular file without ``force`` (exit 4).
    """
    if not _is_stream(_status(path), path, force=force):
        return None
    try:
        # No O_CREAT or O_TRUNC: nothing changes before the type is known again.
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink(path) from None
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None
    found = os.fstat(fd)
    if stat.S_ISREG(found.st_mode):  # replaced by a regular file since the lstat
        os.close(fd)
        if not force:
            raise _exists(path)
        return None
    return fd


def _status(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None


def _is_stream(found: os.stat_result | None, path: Path, *, force: bool) -> bool:
    if found is None:
        return False
    if stat.S_ISLNK(found.st_mode):
        raise _symlink(path)
    if stat.S_ISDIR(found.st_mode):
        raise InvalidInput(f"{path} is a folder; nothing was written")
    if stat.S_ISREG(found.st_mode):
        if not force:
            raise _exists(path)
        return False
    return True


@contextlib.contextmanager
def _replacement(path: Path, *, force: bool) -> Iterator[TextIO]:
    """A temporary file beside ``path`` that becomes ``path`` when the block succeeds."""
    folder = path.parent
    # Named after the target so that a file left by SIGKILL says what it was.
    prefix = f".{path.name[:40]}."
    try:
        fd, temp = create_private_temporary_file(folder, prefix=prefix, suffix=".tmp")
    except OSError as exc:
        raise InvalidInput(f"cannot create {path}: {exc.strerror}") from None
    handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
    try:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        _put_in_place(temp, path, force=force)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        kept = f"; {path} is unchanged" if os.path.lexists(path) else "; nothing was written"
        _raise_if_write_error(exc, path, kept)
        raise
    _sync_folder(folder, path)


def _put_in_place(temp: Path, path: Path, *, force: bool) -> None:
    """Rename ``temp`` to ``path``: over a regular file only with ``force``, never over a stream."""
    found = _status(path)
    if found is not None:
        if not stat.S_ISREG(found.st_mode):
            raise Conflict(f"{path} was taken by something else meanwhile; nothing was written")
        if not force:
            raise _exists(path)
        os.replace(temp, path)
        return
    if force:
        os.replace(temp, path)
        return
    try:
        # A hard link fails if the name was taken meanwhile; a rename would replace it.
        os.link(temp, path)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        os.replace(temp, path)
        return
    temp.unlink()


def _sync_folder(folder: Path, path: Path) -> None:
    """Make the rename durable: it lives in the folder, which has its own fsync."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # an unreadable folder: the rename is done, only its durability is unproven
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OutputFileFailed(
                f"{path} was written, but its folder could not be synced: {exc.strerror}"
            ) from exc
    finally:
        os.close(fd)


def _raise_if_write_error(exc: BaseException, path: Path, kept: str) -> None:
    """A write error as one line with its exit code (a closed pipe stays what it is)."""
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        raise OutputFileFailed(f"cannot write {path}: {exc.strerror}{kept}") from exc


def _symlink(path: Path) -> InvalidInput:
    return InvalidInput(
        f"{path} is a symbolic link; nothing was written",
        hint="give the path it points to, or leave out --output-file to write to stdout",
    )


def _exists(path: Path) -> Conflict:
    return Conflict(
        f"{path} already exists; nothing was written", hint="use --force to overwrite it"
    )
