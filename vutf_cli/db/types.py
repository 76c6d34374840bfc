"""Column types that behave the same on PostgreSQL and SQLite.

* ``GUID``: native ``uuid`` on PostgreSQL, 36-character text on SQLite.
* ``JSONType``: ``jsonb`` on PostgreSQL, text holding JSON on SQLite; values
  round-trip unchanged and are never encoded twice.  Both are read by
  :func:`read_stored_json` (on PostgreSQL the engine hands it to the driver).
* ``UTCDateTime``: ``timestamptz`` on PostgreSQL; on SQLite a sortable text
  form of the UTC instant.  Values always come back timezone-aware UTC, and
  naive datetimes are refused on the way in (they are a bug, not data).

The PostgreSQL types are looked up when a PostgreSQL dialect asks for them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CHAR, DateTime, Dialect, Text
from sqlalchemy.types import TypeDecorator, TypeEngine

from vutf_cli.errors import IntegrityFailure
from vutf_cli.input_documents import JsonRefused, parse_json


class GUID(TypeDecorator[uuid.UUID]):
    impl = CHAR(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import UUID

            return dialect.type_descriptor(UUID(as_uuid=True))
        return dialect.type_descriptor(CHAR(36))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, uuid.UUID):
            value = uuid.UUID(str(value))
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(str(value))


def dumps_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def read_stored_json(text: str) -> Any:
    """A stored JSON value, as Python reads it; IntegrityFailure (exit 6) when it cannot.

    vutf writes only what Python can read back, so a value it cannot (a
    number of more than 4300 digits, nesting past the recursion limit) was
    written by someone else: said so, instead of failing as a bug.
    """
    try:
        return parse_json(text, allow_repeated_keys=True)
    except JsonRefused as exc:  # SQLite keeps any text
        where = "" if exc.lineno is None else f" at line {exc.lineno}, column {exc.colno}"
        raise IntegrityFailure(
            f"a stored JSON value cannot be read ({exc.reason}{where}): "
            "it was written outside vutf",
            hint="the database was edited by hand; `vutf audit verify` checks the audit log",
        ) from None


class JSONType(TypeDecorator[Any]):
    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            # JSONB's own bind processor serializes; we must not encode again.
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return dumps_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return read_stored_json(value)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite keeps the text; storing naive UTC keeps it sortable and comparable.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the driver, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
