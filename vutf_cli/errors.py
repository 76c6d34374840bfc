"""The one exception hierarchy of vutf; every class carries its exit code.

The command line maps these to exit codes in exactly one place
(``vutf_cli.cli.app``).  Library errors (SQLAlchemy, Alembic, argon2) are
translated into these where they are caught and never shown raw.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Documented exit codes (README and docs/architecture.md §5)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    DENIED = 5
    INTEGRITY = 6
    UNAVAILABLE = 7
    SCHEMA_OUTDATED = 8
    NOT_DELIVERED = 9
    CHANGES_PENDING = 10  # `vutf plan`: the database differs from the file (not an error)
    INTERRUPTED = 130


class VutfError(Exception):
    """Base of every error vutf reports to its user."""

    exit_code: ExitCode = ExitCode.INTERNAL
    code: str = "internal_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def details(self) -> dict[str, Any]:
        """Extra members of the JSON error object (``-o json``), beside code and message."""
        return {}


class PipeClosed(Exception):
    """stdout was closed by its reader (``| head``): a normal way to stop, exit 0.

    Not an ``OSError`` on purpose: whatever writes to stdout turns its
    ``BrokenPipeError`` into this, so no library between the write and the
    entry point mistakes a closed pipe for a failure.
    """


class InternalError(VutfError):
    exit_code = ExitCode.INTERNAL
    code = "internal_error"


class InvalidInput(VutfError):
    """Bad flag value, bad email, unknown scope, bad duration, weak password..."""

    exit_code = ExitCode.USAGE
    code = "invalid_input"


class NotFound(VutfError):
    exit_code = ExitCode.NOT_FOUND
    code = "not_found"


class Conflict(VutfError):
    """Already exists, or the object is in the wrong state for the operation."""

    exit_code = ExitCode.CONFLICT
    code = "conflict"


class StaleVersion(Conflict):
    """An optimistic-lock check failed: somebody changed the row meanwhile."""

    code = "stale_version"


class Denied(VutfError):
    """Wrong password, invalid/expired/revoked key, missing permission."""

    exit_code = ExitCode.DENIED
    code = "denied"


class IntegrityFailure(VutfError):
    """Audit chain broken, schema drift, append-only rule violated."""

    exit_code = ExitCode.INTEGRITY
    code = "integrity_failure"


class DatabaseUnavailable(VutfError):
    """The database could not be reached within the deadline, or the circuit is open."""

    exit_code = ExitCode.UNAVAILABLE
    code = "database_unavailable"


class OutputFileFailed(VutfError):
    """Writing an output file failed (full disk, quota, I/O error): an environment failure."""

    exit_code = ExitCode.UNAVAILABLE
    code = "output_file_failed"


class StdoutFailed(VutfError):
    """stdout could not be written (full disk, quota, I/O error): an environment failure.

    A closed pipe is not this (:class:`PipeClosed`).  ``reason`` is the
    system's words (``No space left on device``), for a message of the
    caller's own (a one-time secret's).
    """

    exit_code = ExitCode.UNAVAILABLE
    code = "stdout_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot write to stdout: {reason}")
        self.reason = reason


class SecretNotDelivered(VutfError):
    """A one-time secret (a new API key, a generated password) was created but not written out.

    The object exists and the secret is nowhere else, so this is neither
    success nor "nothing happened": the message names what was created and
    the hint how to revoke or replace it.
    """

    exit_code = ExitCode.NOT_DELIVERED
    code = "secret_not_delivered"


class SchemaOutdated(VutfError):
    """The database schema is not at the head revision."""

    exit_code = ExitCode.SCHEMA_OUTDATED
    code = "schema_outdated"

    def __init__(self, message: str, *, hint: str | None = "run `vutf db upgrade`") -> None:
        super().__init__(message, hint=hint)
