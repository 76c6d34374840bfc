"""The rows of an import file: what is read, what is validated, and what is wrong with them.

See :mod:`vutf_cli.services.user_import` for the formats and columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from vutf_cli.errors import Conflict, InvalidInput, VutfError

IMPORT_COLUMNS: Final = (
    "username",
    "email",
    "full_name",
    "is_superuser",
    "is_active",
    "is_verified",
    "password",
    "password_hash",
)
REQUIRED_COLUMNS: Final = ("username", "email")
# The rest of what `users export` writes: accepted so an export imports as it
# is, and ignored because the database assigns them (is_deleted is checked).
EXPORT_ONLY_COLUMNS: Final = (
    "id",
    "verified_at",
    "last_login_at",
    "last_login_ip",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
    "is_deleted",
    "deleted_at",
    "deleted_by",
    "failed_login_count",
    "last_failed_login_at",
    "locked_until",
    "state",
)
KNOWN_COLUMNS: Final = frozenset(IMPORT_COLUMNS) | frozenset(EXPORT_ONLY_COLUMNS)


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Something wrong with record number ``row`` of the file (from 1), which starts on ``line``.

    ``row`` tells records apart (several objects of a compact JSON array share
    a line); ``location`` is how messages name the record.
    """

    row: int
    line: int
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "line": self.line, "message": self.message}


def _summary(problems: Sequence[RowProblem]) -> str:
    count = len({problem.row for problem in problems})
    rows = "row" if count == 1 else "rows"
    return f"import refused: {len(problems)} problem(s) in {count} {rows}; nothing was written"


class _RefusedRows(VutfError):
    """Rows of the file that stop the import; ``problems`` says where and why."""

    refusal_hint: str

    def __init__(self, problems: Sequence[RowProblem], *, message: str | None = None) -> None:
        super().__init__(message or _summary(problems), hint=self.refusal_hint)
        self.problems = tuple(problems)

    def details(self) -> dict[str, Any]:
        return {"problems": [problem.as_json() for problem in self.problems]}


class ImportRejected(_RefusedRows, InvalidInput):
    """Rows of the file are invalid (exit 2)."""

    code = "invalid_import"
    refusal_hint = "fix the rows listed above and run it again"


class ImportConflict(_RefusedRows, Conflict):
    """Rows of the file clash with existing users (exit 4)."""

    code = "import_conflict"
    refusal_hint = "remove those rows, or use --skip-existing to leave existing users alone"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from the file, before validation.

    ``row`` is its number among the file's records (from 1), ``line`` the line
    it starts on; ``in_array`` marks the objects of a JSON array, which may
    share a line.  ``from_csv`` changes how values are read (everything is
    text there); ``cell_count`` is set when a CSV row has not as many cells
    as the header.
    """

    row: int
    line: int
    values: Mapping[str, Any]
    from_csv: bool = False
    cell_count: int | None = None
    in_array: bool = False

    @property
    def location(self) -> str:
        if self.in_array:
            return f"line {self.line}, object {self.row}"
        return f"line {self.line}"

    def problem(self, message: str) -> RowProblem:
        return RowProblem(self.row, self.line, self.location, message)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    format: str
    records: tuple[RawRecord, ...]


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A validated row: what will be registered.  Secrets are kept out of repr().

    ``row`` and ``location`` are those of its :class:`RawRecord`.
    """

    row: int
    line: int
    location: str
    username: str
    email: str
    full_name: str | None
    is_superuser: bool
    is_active: bool
    is_verified: bool
    password: str | None = field(default=None, repr=False)
    password_hash: str | None = field(default=None, repr=False)
    # A hash weaker than the configured profile, let in by --allow-weak-hashes.
    weak_hash: bool = False

    def problem(self, message: str) -> RowProblem:
        return RowProblem(self.row, self.line, self.location, message)


def json_type(value: Any) -> str:
    """How a message names the JSON type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
