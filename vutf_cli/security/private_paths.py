"""Creating private files and folders: the one owner of "nobody else may read this".

Every file vutf creates is mode 0600 and every folder 0700, whatever the
umask (docs/architecture.md §3.6): the SQLite database and the folders on
its way (SQLite then gives its ``-wal``, ``-shm`` and ``-journal`` the mode
of the database file), ``--secret-file`` and the temporary file of an
``--output-file``.

The mode is asked for at creation (``open``/``mkdir`` with 0600/0700, which
the umask can only narrow, so the object is never more open than private)
and then set exactly with ``fchmod`` on a descriptor opened without
following symbolic links (a umask such as 0277 would otherwise leave the
owner unable to write).  What exists already is never
chmod-ed: its mode is its owner's choice.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Final

__all__ = [
    "PRIVATE_FILE_MODE",
    "PRIVATE_FOLDER_MODE",
    "create_private_file",
    "create_private_temporary_file",
    "make_private_folders",
]

PRIVATE_FILE_MODE: Final = 0o600
PRIVATE_FOLDER_MODE: Final = 0o700

_CREATE_FLAGS: Final = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FOLDER_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
)


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and every missing folder above it, each 0700.

    Folders that exist are left as they are.  OSError if one cannot be
    created (the caller says what it was for).
    """
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_FOLDER_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process: its mode is its creator's
        _chmod_new_folder(path)


def _chmod_new_folder(path: Path) -> None:
    """Set 0700 on the folder just made at ``path``, never on what a symlink points to.

    Whoever may rename entries in the parent could swap the new folder for a
    symbolic link before this runs: the folder is opened with ``O_NOFOLLOW``
    and changed through its descriptor (a link there is OSError, ELOOP).
    """
    try:
        fd = os.open(path, _FOLDER_FLAGS)
    except PermissionError:
        # A umask that took even the owner's read bit: the folder cannot be
        # opened; change it by name without following a link where the OS can.
        if os.chmod in os.supports_follow_symlinks:
            os.chmod(path, PRIVATE_FOLDER_MODE, follow_symlinks=False)
        elif stat.S_ISDIR(os.lstat(path).st_mode):
            os.chmod(path, PRIVATE_FOLDER_MODE)
        else:
            raise
        return
    try:
        os.fchmod(fd, PRIVATE_FOLDER_MODE)
    finally:
        os.close(fd)


def create_private_file(path: Path, *, write: bool = True) -> int:
    """A descriptor of a NEW file at ``path``, mode 0600 (FileExistsError if anything is there).

    ``O_EXCL`` with ``O_NOFOLLOW``: an existing file or a symbolic link
    (dangling or not) is never opened, so nothing planted at ``path`` is
    written or chmod-ed.  ``write``: open for writing (else read/write).
    """
    flags = _CREATE_FLAGS | (os.O_WRONLY if write else os.O_RDWR)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private_temporary_file(folder: Path, *, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new uniquely named file of mode 0600 in ``folder``: its descriptor and path."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise
    return fd, Path(name)
