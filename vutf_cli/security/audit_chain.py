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
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

from vutf_cli.security.audit_fields import HASHED_FIELDS, SCALAR_FIELDS

__all__ = [
    "AUDIT_KEY_FIELD",
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "RowTemplate",
    "audit_key_fingerprint",
    "canonical_json",
    "canonical_row_text",
    "canonical_text_of_json_row",
    "canonical_value_text",
    "canonical_value_texts",
    "compute_row_hash",
    "format_timestamp",
    "hash_canonical",
    "jsonable",
    "row_hasher",
]

GENESIS_HASH: Final = "0" * 64

# The metadata field naming the audit key a row was written with (its fingerprint).
AUDIT_KEY_FIELD: Final = "audit_key"
_AUDIT_KEY_LABEL: Final = b"vutf audit key fingerprint v1"

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


def canonical_value_texts(values: Sequence[Any]) -> list[str | None]:
    """:func:`canonical_value_text` of each of ``values``, in one pass of the encoder.

    The same texts, element for element: the encoder writes a list's
    elements one after another exactly as it writes each alone.  Each
    ``encode`` call sets up a new C encoder, which costs more than encoding
    a small value; here the whole list is encoded once, with a random marker
    between the elements to cut it apart.  A marker is a JSON string of 32
    random hex digits, chosen per call, so no element can hold it by
    design; if one did (the count of markers is off), each value is encoded
    on its own instead.
    """
    if len(values) < 2:
        return [canonical_value_text(value) for value in values]
    marker = secrets.token_hex(16)
    spaced: list[Any] = [marker] * (2 * len(values) - 1)
    spaced[::2] = values
    text = _CANONICAL_ENCODER.encode(spaced)
    parts = text[1:-1].split(f',"{marker}",')
    if len(parts) != len(values):
        return [canonical_value_text(value) for value in values]
    return [None if value is None else part for value, part in zip(values, parts, strict=True)]


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
    # Field by field (measured: faster than encoding the scalars as one
    # dict, whose every encode call sets up a new C encoder).
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


class RowTemplate:
    """:func:`canonical_row_text` of many rows that share most of their fields.

    Built once per bulk write (an import) from the scalars its rows share
    and their one ``metadata`` text; :meth:`text` gives a row's canonical
    text from its own ``varying`` scalars (in the order named) and its
    ``changes`` text, through :func:`canonical_row_text` itself: there is
    no second way of writing the text.
    """

    __slots__ = ("_metadata", "_shared", "_varying")

    def __init__(
        self, shared: Mapping[str, Any], metadata: str | None, varying: tuple[str, ...]
    ) -> None:
        unknown = set(varying) - set(SCALAR_FIELDS)
        if unknown:
            raise ValueError("not scalar audit fields: " + ", ".join(sorted(unknown)))
        self._shared = {name: shared.get(name) for name in SCALAR_FIELDS if name not in varying}
        # The shared fields are spelled now: a value JSON cannot carry fails here.
        canonical_row_text(self._shared, None, metadata)
        self._metadata = metadata
        self._varying = varying

    def text(self, varying: tuple[Any, ...], changes: str | None) -> str:
        """The canonical text of the row with these ``varying`` values and ``changes`` text."""
        scalars = dict(self._shared)
        scalars.update(zip(self._varying, varying, strict=True))
        return canonical_row_text(scalars, changes, self._metadata)


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


def audit_key_fingerprint(key: str | None) -> str | None:
    """16 hex digits naming ``key`` (HMAC-SHA256 of a fixed label under it), None without one.

    Stored in every row's ``metadata`` as :data:`AUDIT_KEY_FIELD`, so that a
    row that does not verify can be told apart: written under another key
    (or none) rather than edited.  It reveals nothing a row hash does not:
    both are HMACs under the key of text anyone reading the log knows.
    """
    if not key:
        return None
    return hmac.digest(key.encode("utf-8"), _AUDIT_KEY_LABEL, "sha256").hex()[:16]
