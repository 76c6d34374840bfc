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
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from json.encoder import encode_basestring
from typing import Any, Final

__all__ = [
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "JSON_VALUE_FIELDS",
    "canonical_json",
    "canonical_text_of_json_row",
    "canonical_text_of_plain_row",
    "compute_row_hash",
    "format_timestamp",
    "hash_canonical",
    "jsonable",
    "row_hasher",
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


def _reused_json_encoder() -> Callable[[Any], str]:
    """``_CANONICAL_ENCODER.encode`` for JSON values, without its per-call setup.

    ``JSONEncoder.encode`` builds a new C encoder on every call (about a
    microsecond); this builds the same one, with the same arguments, once.
    Cycle detection is off: a JSON value parsed from text has no cycles.
    """
    make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_c_encoder is None:  # an interpreter without the C accelerator
        return _CANONICAL_ENCODER.encode
    encoder = _CANONICAL_ENCODER
    c_encoder = make_c_encoder(
        None,
        encoder.default,
        encode_basestring,  # what ensure_ascii=False selects
        encoder.indent,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )

    def encode(value: Any) -> str:
        return "".join(c_encoder(value, 0))

    return encode


_encode_json_value: Final = _reused_json_encoder()
# The scanner json.loads runs (a default decoder's; an instance attribute,
# hence vars(): typeshed does not declare it).
_scan_json_value: Final[Callable[[str, int], tuple[Any, int]]] = vars(json.JSONDecoder())[
    "scan_once"
]


def _parse_json(text: str) -> Any:
    """``json.loads(text)`` (what psycopg2 and the JSON column type call), minus its overhead.

    ``json.loads`` skips whitespace around the value and then scans it with
    this same scanner; a text that has no such whitespace (jsonb's output
    never has) scans to its end and gives the same value.  Any other text
    takes ``json.loads`` itself, errors included.
    """
    if type(text) is str:
        try:
            value, end = _scan_json_value(text, 0)
        except StopIteration:
            pass
        else:
            if end == len(text):
                return value
    return json.loads(text)


# The canonical document of a row as one %-template: its keys in the order
# sort_keys gives (canonical_text_of_plain_row fills them in this order),
# each as the encoder spells a plain ASCII key.
_PLAIN_ROW_ORDER: Final = (
    "action",
    "actor",
    "changes",
    "created_at",
    "duration_ms",
    "error_message",
    "id",
    "ip_address",
    "metadata",
    "resource_id",
    "resource_type",
    "seq",
    "status",
    "user_agent",
    "user_id",
)
if tuple(sorted(HASHED_FIELDS)) != _PLAIN_ROW_ORDER:  # pragma: no cover - a guard for editors
    raise RuntimeError("_PLAIN_ROW_ORDER must list HASHED_FIELDS sorted")
_PLAIN_ROW_TEMPLATE: Final = "{" + ",".join(f'"{name}":%s' for name in _PLAIN_ROW_ORDER) + "}"


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


def _reencoded(text: str) -> str:
    return _encode_json_value(_parse_json(text))


def _verbatim(text: str) -> str:
    if type(text) is not str:
        raise TypeError("stored JSON must be text")
    return text


def canonical_text_of_plain_row(
    values: Sequence[Any],
    id_text: str,
    created_at_text: str,
    user_id_text: str | None,
    *,
    json_as_stored: bool = False,
) -> str | None:
    """:func:`canonical_json` as text for a row read as plain driver values, or None.

    ``values`` holds the row's columns in :data:`HASHED_FIELDS` order (more
    may follow), with ``changes`` and ``metadata`` as JSON text (or None).
    The UUIDs and the timestamp are given separately, already spelled as
    :func:`jsonable` spells them (the caller converts or checks them).
    Every other scalar must be a plain ``str`` or ``int`` (or None), which
    ``jsonable`` keeps as it is.

    The text equals what :func:`canonical_json` writes for the same row:
    the JSON text is parsed by ``json.loads``, as the drivers do, and
    re-encoded by the canonical encoder; the top-level keys are written in
    the sorted order that ``sort_keys`` gives.  Returns None for anything
    else (another type, a value the encoder refuses): such a row must take
    the exact path, which gives its result or raises its error.

    ``json_as_stored``: ``changes``/``metadata`` are put in as they are
    instead of parsed and re-encoded.  Only for checking a hash: vutf stores
    them in the canonical spelling (SQLite keeps that text), so the text
    hashes as written; a stored text spelled any other way gives a different
    digest, and a caller must then take the exact path before it calls the
    row edited (a match, barring a SHA-256 collision, means the text is the
    canonical text that was hashed, which re-encodes to itself).
    """
    encode_json = _verbatim if json_as_stored else _reencoded
    try:
        (
            _id,
            seq,
            _created_at,
            actor,
            _user_id,
            action,
            resource_type,
            resource_id,
            status,
            changes,
            metadata,
            error_message,
            duration_ms,
            ip_address,
            user_agent,
        ) = values[:15]
        # int.__repr__ would spell a bool as a number, where the encoder writes true.
        if type(seq) is not int or not (duration_ms is None or type(duration_ms) is int):
            return None
        # encode_basestring refuses anything but str (TypeError: the exact
        # path), and writes a str as the encoder writes it.
        return _PLAIN_ROW_TEMPLATE % (
            "null" if action is None else encode_basestring(action),
            "null" if actor is None else encode_basestring(actor),
            "null" if changes is None else encode_json(changes),
            encode_basestring(created_at_text),
            "null" if duration_ms is None else int.__repr__(duration_ms),
            "null" if error_message is None else encode_basestring(error_message),
            encode_basestring(id_text),
            "null" if ip_address is None else encode_basestring(ip_address),
            "null" if metadata is None else encode_json(metadata),
            "null" if resource_id is None else encode_basestring(resource_id),
            "null" if resource_type is None else encode_basestring(resource_type),
            int.__repr__(seq),
            "null" if status is None else encode_basestring(status),
            "null" if user_agent is None else encode_basestring(user_agent),
            "null" if user_id_text is None else encode_basestring(user_id_text),
        )
    except Exception:  # refused here means: take the exact path
        return None


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
    """Hex SHA-256 of ``prev_hash`` + canonical JSON; HMAC-SHA256 when ``key`` is set.

    ``key`` is the ``VUTF_AUDIT_KEY`` value; an empty string counts as unset,
    the same rule as for the API key pepper.
    """
    return hash_canonical(prev_hash, canonical_json(content), key)
