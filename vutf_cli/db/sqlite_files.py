"""Which file a SQLite URL names, read as the driver and SQLite will read it; created private.

A SQLite database is more than one file: SQLite puts ``-wal``, ``-shm`` and
``-journal`` beside it and gives them the mode of the database file.  So a
database vutf creates is private in every file exactly when vutf creates the
database file itself, 0600 (and the folders on its way, 0700) before SQLite
opens it (docs/architecture.md §3.6).  For that vutf must know the file for
every URL form that connects: ``sqlite:///relative.db``,
``sqlite:////absolute.db``, ``sqlite+pysqlite:///…`` and SQLite URI
filenames (``sqlite:///file:x.db?mode=rwc&uri=true``), whose path and
parameters are read here as SQLite reads them (``sqlite3ParseUri``).

Forms whose files vutf could not make private are refused (exit 2) before
anything is created: a ``vfs=`` parameter (another VFS may put other files
elsewhere: ``unix-dotfile`` makes lock folders) and ``modeof=`` (SQLite
would copy another file's mode onto a new database).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from sqlalchemy.engine import URL

from vutf_cli.errors import InvalidInput
from vutf_cli.security.private_paths import create_private_file, make_private_folders

__all__ = ["SqliteFile", "create_database_file", "sqlite_file"]

# SQLite URI parameters that decide where files go or what mode they get.
_REFUSED_PARAMETERS: Final = {
    "vfs": "another VFS may put other files elsewhere, which vutf cannot make private",
    "modeof": "SQLite would give a new database the mode of another file instead of 0600",
}
_URI_MODES: Final = frozenset({"ro", "rw", "rwc", "memory"})
# How sqlite3_uri_boolean reads "immutable=…".
_TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class SqliteFile:
    """The database file of a SQLite URL and how SQLite will open it.

    ``may_create``: SQLite creates the file when it is missing (no URI
    ``mode=ro`` or ``mode=rw``).  ``read_only``: ``mode=ro`` or
    ``immutable=1``: SQLite writes nothing.
    """

    path: Path
    may_create: bool = True
    read_only: bool = False


def sqlite_file(url: URL) -> SqliteFile | None:
    """The file ``url`` (a SQLite URL) opens, or None for an in-memory or temporary database.

    The filename is the one SQLAlchemy's dialect hands to the driver
    (``create_connect_args``: with ``uri=true`` the other query parameters
    are appended to it), read as SQLite reads it.  InvalidInput (exit 2) for
    a URL form whose files vutf could not make private.
    """
    arguments, options = url.get_dialect()().create_connect_args(url)
    filename = str(arguments[0])
    if filename == ":memory:" or not filename:
        return None
    if not options.get("uri") or not filename.startswith("file:"):
        # A plain filename (also "file:x.db" without uri=true: a file of that name).
        return SqliteFile(Path(os.path.abspath(filename)))
    path_part, parameters = _parse_uri(filename)
    return _file_of_uri(path_part, parameters)


def _parse_uri(filename: str) -> tuple[str, list[tuple[str, str]]]:
    """The decoded path and the ``(name, value)`` parameters of a URI filename, as SQLite parses."""
    rest = filename[len("file:") :]
    if rest.startswith("//"):
        authority_end = rest.find("/", 2)
        authority = rest[2:] if authority_end < 0 else rest[2:authority_end]
        if authority not in ("", "localhost"):
            raise InvalidInput(
                f"a SQLite URI names a file on this machine, not on {authority[:40]!r}",
                hint="write file:/absolute/path.db or file:relative.db",
            )
        rest = "" if authority_end < 0 else rest[authority_end:]
    rest = rest.partition("#")[0]
    path_part, _, query = rest.partition("?")
    parameters = []
    for item in query.split("&") if query else ():
        name, _, value = item.partition("=")
        if name:
            parameters.append((unquote(name), unquote(value)))
    return unquote(path_part), parameters


def _file_of_uri(path_part: str, parameters: list[tuple[str, str]]) -> SqliteFile | None:
    mode = None
    immutable = False
    for name, value in parameters:
        reason = _REFUSED_PARAMETERS.get(name)
        if reason is not None:
            raise InvalidInput(
                f"the SQLite URI parameter {name}= is not supported: {reason}",
                hint="leave it out; vutf creates the database file 0600 itself",
            )
        if name == "mode":
            if value not in _URI_MODES:
                raise InvalidInput(
                    f"unknown SQLite URI mode {value[:20]!r}",
                    hint="mode is one of: ro, rw, rwc, memory",
                )
            mode = value  # SQLite takes the last one
        elif name == "immutable":
            immutable = value.strip().lower() in _TRUE_WORDS
    if mode == "memory" or not path_part or path_part == ":memory:":
        return None  # in memory, or a temporary file SQLite makes 0600 and deletes
    return SqliteFile(
        Path(os.path.abspath(path_part)),
        may_create=mode in (None, "rwc"),
        read_only=mode == "ro" or immutable,
    )


def create_database_file(path: Path) -> None:
    """Create the database file 0600 (and the folders on its way 0700) unless it exists.

    A symbolic link that points nowhere is created at its target, privately,
    as SQLite would create it there.  OSError when it cannot be created.
    """
    if os.path.islink(path) and not os.path.exists(path):
        path = Path(os.path.realpath(path))
    make_private_folders(path.parent)
    try:
        fd = create_private_file(path, write=False)
    except FileExistsError:
        return  # an existing database keeps the mode its owner gave it
    os.close(fd)
