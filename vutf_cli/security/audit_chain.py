"""Tamper-evident hash chain over the audit log (DESIGN.md section 2).

``row_hash = sha256(prev_hash || canonical_json(row))``, or HMAC-SHA256 keyed
with ``VUTF_AUDIT_KEY`` when that is set; the first row's ``prev_hash`` is
:data:`GENESIS_HASH`.

The canonical form must come out byte-identical whether the row is the dict
the writer built or the row read back later from PostgreSQL (``jsonb``
reorders object keys, ``uuid`` and ``timestamptz`` come back as objects) or
SQLite (UUIDs as text, timestamps possibly naive).  Hence: only
:data:`HASHED_FIELDS` are hashed, a missing field counts as ``null``, keys
are sorted at every depth, UUIDs become strings and datetimes one fixed UTC
spelling.  Writers should store ``changes``/``metadata`` as
:func:`jsonable` returns them, so what is read back equals what was hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

__all__ = [
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "JSON_VALUE_FIELDS",
    "canonical_json",
    "canonical_text_of_json_row",
    "compute_row_hash",
    "format_timestamp",
    "hash_canonical",
    "jsonable",
]

GENESIS_HASH: Final = "0" * 64

HASHED_FIELDS: tuple[str, ...] = (
    "id",
    "seq",
    "created_at",
    "actor",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "status",
    "changes",
    "metadata",
    "error_message",
    "duration_ms",
    "ip_address",
    "user_agent",
)

# The hashed fields that hold nested JSON; every other one holds a scalar.
JSON_VALUE_FIELDS: Final = ("changes", "metadata")
_SCALAR_FIELDS: Final = tuple(name for name in HASHED_FIELDS if name not in JSON_VALUE_FIELDS)
# One encoder for every row: json.dumps would build an equal one per call.
_CANONICAL_ENCODER: Final = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    # NaN/Infinity are not JSON; jsonb would refuse them anyway.
    allow_nan=False,
)


def format_timestamp(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; naive datetimes are taken as UTC."""
    tzinfo = value.tzinfo
    if tzinfo is None:
        utc = value
    else:
        # astimezone to the datetime's own zone returns it unchanged: skipped.
        utc = (value if tzinfo is UTC else value.astimezone(UTC)).replace(tzinfo=None)
    # timespec pins the fraction to 6 digits (isoformat drops a zero fraction);
    # isoformat, unlike strftime("%Y"), always zero-pads the year to 4 digits.
    return utc.isoformat(timespec="microseconds") + "Z"


def jsonable(value: Any) -> Any:
    """Return ``value`` with datetimes, dates and UUIDs as strings, recursively.

    Raises TypeError for anything JSON cannot carry unambiguously (sets,
    bytes, non-string object keys): hashing must never depend on a guess.
    """
    kind = type(value)
    # Exact types first (a fast test); subclasses take the isinstance test.
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit JSON object keys must be strings, got {type(key).__name__}")
            out[key] = jsonable(item)
        return out
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    raise TypeError(f"cannot put a {type(value).__name__} into the audit chain")


def _dumps(document: dict[str, Any]) -> str:
    return _CANONICAL_ENCODER.encode(document)


def canonical_json(content: Mapping[str, Any]) -> bytes:
    """UTF-8 canonical JSON of the hashed fields of an audit row.

    Fields outside :data:`HASHED_FIELDS` (``prev_hash``, ``row_hash``, ORM
    state) are ignored; a hashed field that is absent is hashed as null.
    """
    document = {name: jsonable(content.get(name)) for name in HASHED_FIELDS}
    return _dumps(document).encode("utf-8")


def canonical_text_of_json_row(content: Mapping[str, Any]) -> str:
    """:func:`canonical_json` as text, for a row whose ``changes`` and ``metadata``
    are JSON values already: None or what ``json.loads`` or :func:`jsonable`
    return (str-keyed dicts, lists, str, int, float, bool, None, recursively).

    Such a value goes into the document as it is instead of through
    :func:`jsonable` (most of the hashing time of a row): ``jsonable`` would
    return it unchanged, leaf for leaf (the very same objects; dicts with the
    same items, lists with the same items), so ``json.dumps`` writes the same
    text.  Anything else (a datetime, a non-str key) is not a JSON value and
    must go through :func:`canonical_json`.
    """
    document: dict[str, Any] = {}
    for name in _SCALAR_FIELDS:
        value = content.get(name)
        kind = type(value)
        # What jsonable returns, with its commonest cases inlined.
        if kind is str or kind is int or value is None:
            document[name] = value
        elif kind is uuid.UUID:
            document[name] = str(value)
        elif kind is datetime:
            document[name] = format_timestamp(value)
        else:
            document[name] = jsonable(value)
    for name in JSON_VALUE_FIELDS:
        document[name] = content.get(name)
    return _dumps(document)


def hash_canonical(prev_hash: str, canonical: bytes, key: str | None = None) -> str:
    """Hex SHA-256 of ``prev_hash`` + ``canonical``; HMAC-SHA256 when ``key`` is set.

    ``key`` is the ``VUTF_AUDIT_KEY`` value; an empty string counts as unset,
    the same rule as for the API key pepper.
    """
    data = prev_hash.encode("utf-8") + canonical
    if key:
        return hmac.new(key.encode("utf-8"), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def compute_row_hash(prev_hash: str, content: Mapping[str, Any], key: str | None = None) -> str:
    """Hex SHA-256 of ``prev_hash`` + canonical JSON; HMAC-SHA256 when ``key`` is set.

    ``key`` is the ``VUTF_AUDIT_KEY`` value; an empty string counts as unset,
    the same rule as for the API key pepper.
    """
    return hash_canonical(prev_hash, canonical_json(content), key)
