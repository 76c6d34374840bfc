"""Tamper-evident hash chain over the audit log (docs/architecture.md §3).

``row_hash = sha256(prev_hash || canonical text of the row)``, or HMAC-SHA256
keyed with ``VUTF_AUDIT_KEY`` when that is set; the first row's
``prev_hash`` is :data:`GENESIS_HASH`.

The canonical text of a row is the JSON object of its
:data:`~vutf_cli.security.audit_fields.HASHED_FIELDS` (a missing field
counts as null), keys sorted at every depth, compact separators, non-ASCII
kept as it is, UUIDs as lower-case strings and datetimes in one fixed UTC
spelling (:func:`format_timestamp`).  :func:`canonical_row_text` is the one
function that writes it: the writer calls it with the JSON texts it stores,
the verifier with the JSON texts it reads, so a stored JSON text that is
spelled in any other way hashes differently.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

from vutf_cli.security.audit_fields import HASHED_FIELDS, SCALAR_FIELDS

__all__ = [
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "canonical_json",
    "canonical_row_text",
    "canonical_text_of_json_row",
    "canonical_value_text",
    "compute_row_hash",
    "format_timestamp",
    "hash_canonical",
    "jsonable",
    "row_hasher",
]

GENESIS_HASH: Final = "0" * 64

# One encoder for every row (json.dumps would build an equal one per call).
_CANONICAL_ENCODER: Final = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    # NaN/Infinity are not JSON; jsonb would refuse them anyway.
    allow_nan=False,
    # A value parsed from text or built by jsonable has no cycles to detect.
    check_circular=False,
)
# The hashed fields in the order sort_keys puts them: name, its `"name":`
# prefix (plain ASCII names: nothing to escape), whether it holds JSON text.
_ROW_LAYOUT: Final = tuple(
    (name, f'"{name}":', name not in SCALAR_FIELDS) for name in sorted(HASHED_FIELDS)
)


def format_timestamp(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; naive datetimes are taken as UTC."""
    tzinfo = value.tzinfo
    if tzinfo is None:
        utc = value
    else:
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


def canonical_value_text(value: Any) -> str | None:
    """The canonical JSON text of a JSON value (None for None): what vutf stores for it."""
    return None if value is None else _CANONICAL_ENCODER.encode(value)


def canonical_row_text(
    scalars: Mapping[str, Any], changes: str | None, metadata: str | None
) -> str:
    """THE canonical text of an audit row, from its scalars and its two JSON texts.

    ``scalars`` maps each of :data:`SCALAR_FIELDS` (missing: null) to a JSON
    scalar (str, int, float, bool or None: UUIDs and timestamps already
    spelled as :func:`jsonable` spells them).  ``changes`` and ``metadata``
    are JSON texts put in as they are (None: null); the writer passes
    :func:`canonical_value_text` of its values, so the result is the sorted,
    compact JSON of the whole row: the fields in sorted order, each scalar
    written as the canonical encoder writes it.
    """
    encode = _CANONICAL_ENCODER.encode
    parts = []
    for name, prefix, holds_json in _ROW_LAYOUT:
        if holds_json:
            text = changes if name == "changes" else metadata
            parts.append(prefix + ("null" if text is None else text))
            continue
        value = scalars.get(name)
        kind = type(value)
        if kind is str or kind is float:  # the encoder's escaping, and its refusal of NaN
            parts.append(prefix + encode(value))
        elif value is None:
            parts.append(prefix + "null")
        elif kind is int:
            parts.append(prefix + int.__repr__(value))
        elif kind is bool:
            parts.append(prefix + ("true" if value else "false"))
        else:
            return _whole_row_text(scalars, changes, metadata)
    return "{" + ",".join(parts) + "}"


def _whole_row_text(scalars: Mapping[str, Any], changes: str | None, metadata: str | None) -> str:
    # A container or another type where a scalar belongs (no row vutf writes):
    # the whole document goes through the encoder, which refuses what JSON
    # cannot hold.
    document = {name: scalars.get(name) for name in SCALAR_FIELDS}
    document["changes"] = None if changes is None else json.loads(changes)
    document["metadata"] = None if metadata is None else json.loads(metadata)
    return _CANONICAL_ENCODER.encode(document)


def _scalar(value: Any) -> Any:
    # jsonable with its commonest cases first.
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    if kind is uuid.UUID:
        return str(value)
    if kind is datetime:
        return format_timestamp(value)
    return jsonable(value)


def canonical_text_of_json_row(content: Mapping[str, Any]) -> str:
    """:func:`canonical_row_text` of a row whose ``changes`` and ``metadata`` are JSON values.

    JSON values: None or what ``json.loads`` or :func:`jsonable` return
    (str-keyed dicts, lists, str, int, float, bool, None); the writer's
    stored form is one.  The scalars may be UUIDs and datetimes.
    """
    scalars = {name: _scalar(content.get(name)) for name in SCALAR_FIELDS}
    return canonical_row_text(
        scalars,
        canonical_value_text(content.get("changes")),
        canonical_value_text(content.get("metadata")),
    )


def canonical_json(content: Mapping[str, Any]) -> bytes:
    """UTF-8 canonical text of the hashed fields of any audit row mapping.

    Fields outside :data:`HASHED_FIELDS` (``prev_hash``, ``row_hash``, ORM
    state) are ignored; the JSON fields may hold datetimes and UUIDs too.
    """
    return canonical_text_of_json_row(
        {
            **{name: content.get(name) for name in SCALAR_FIELDS},
            "changes": jsonable(content.get("changes")),
            "metadata": jsonable(content.get("metadata")),
        }
    ).encode("utf-8")


def row_hasher(key: str | None = None) -> Callable[[str, str], str]:
    """``hash_canonical(prev_hash, canonical.encode(), key)`` as one call on two str.

    Same digest, with the key encoded once and HMAC computed by the one-shot
    ``hmac.digest`` (no HMAC object per row).
    """
    if key:
        key_bytes = key.encode("utf-8")
        digest = hmac.digest

        def keyed(prev_hash: str, canonical: str) -> str:
            return digest(key_bytes, (prev_hash + canonical).encode("utf-8"), "sha256").hex()

        return keyed
    sha256 = hashlib.sha256

    def plain(prev_hash: str, canonical: str) -> str:
        return sha256((prev_hash + canonical).encode("utf-8")).hexdigest()

    return plain


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
    """Hex SHA-256 of ``prev_hash`` + canonical JSON; HMAC-SHA256 when ``key`` is set."""
    return hash_canonical(prev_hash, canonical_json(content), key)
