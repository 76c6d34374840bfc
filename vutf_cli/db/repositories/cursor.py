"""The opaque cursor of a keyset page: which ordering, and the last row's (value, key).

A cursor is URL-safe base64 of compact JSON ``{"o": order, "d": descending,
"v": value, "k": primary key}``.  Every value is a ``[tag, json-value]``
pair; the tag says how to rebuild the Python value and must match the type
of the ordering column, so a cursor of another ordering or a tampered one is
refused (InvalidInput), never misread.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Boolean, DateTime, Float, Integer, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from vutf_cli.db.types import GUID, JSONType, UTCDateTime
from vutf_cli.errors import InvalidInput

__all__ = ["MAX_CURSOR_CHARS", "decode_cursor", "encode_cursor", "type_tag"]

# A cursor is a few dozen bytes; anything much longer is not one of ours.
MAX_CURSOR_CHARS: Final = 1024

_TAG_NULL: Final = "n"


def type_tag(type_: TypeEngine[Any]) -> str | None:
    """The cursor tag for values of a column type, or None if it cannot be paged by."""
    if isinstance(type_, JSONType):
        return None
    if isinstance(type_, GUID):
        return "u"
    if isinstance(type_, UTCDateTime | DateTime):
        return "t"
    if isinstance(type_, TypeDecorator):
        return type_tag(type_.impl_instance)
    if isinstance(type_, Boolean):
        return "b"
    if isinstance(type_, Integer):
        return "i"
    if isinstance(type_, Float | Numeric):
        return "f"
    if isinstance(type_, String):
        return "s"
    return None


def _encode_value(value: Any) -> list[Any]:
    if value is None:
        return [_TAG_NULL, None]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["f", value]
    if isinstance(value, str):
        return ["s", value]
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")


def _decode_value(encoded: Any, expected_tag: str, *, nullable: bool) -> Any:
    """Rebuild a cursor value; ValueError/TypeError for anything malformed."""
    if not isinstance(encoded, list) or len(encoded) != 2:
        raise ValueError("not a [tag, value] pair")
    tag, raw = encoded
    if tag == _TAG_NULL and raw is None and nullable:
        return None
    if tag != expected_tag:
        raise ValueError("value of the wrong type")
    if tag == "u" and isinstance(raw, str):
        return uuid.UUID(raw)
    if tag == "t" and isinstance(raw, str):
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        return moment
    if tag == "b" and isinstance(raw, bool):
        return raw
    if tag == "i" and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if tag == "f" and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if tag == "s" and isinstance(raw, str):
        return raw
    raise ValueError("value does not match its tag")


def encode_cursor(order_by: str, descending: bool, value: Any, last_pk: Any) -> str:
    """The cursor after the row whose order value is ``value`` and primary key ``last_pk``."""
    payload = {
        "o": order_by,
        "d": descending,
        "v": _encode_value(value),
        "k": _encode_value(last_pk),
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(
    cursor: str, *, order_by: str, descending: bool, tag: str, nullable: bool, pk_tag: str
) -> tuple[Any, Any]:
    """(order value, primary key) from a cursor of this ordering; InvalidInput otherwise."""
    invalid = InvalidInput(
        "invalid cursor: pass back the next_cursor of the previous page unchanged"
    )
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        payload = json.loads(raw)
        if not isinstance(payload, dict) or set(payload) != {"o", "d", "v", "k"}:
            raise ValueError("unexpected cursor shape")
        if payload["o"] != order_by or payload["d"] is not descending:
            raise ValueError("cursor of another ordering")
        value = _decode_value(payload["v"], tag, nullable=nullable)
        last_pk = _decode_value(payload["k"], pk_tag, nullable=False)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise invalid from exc
    return value, last_pk
