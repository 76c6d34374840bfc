"""Turn service results (frozen dataclass views) into JSON-ready values.

This is the one place that decides how values look in machine output
(docs/architecture.md §5):

* timestamps are ISO 8601 in UTC with exactly six fractional digits and a
  ``Z`` suffix (``2026-11-26T06:10:04.123456Z``), so they sort as strings and
  every row has the same shape whatever the database returned;
* numbers and booleans keep their JSON types;
* field names are the dataclass field names, which are the schema's column
  names.

JSON layout (the decision the brief asked for):

* ``dumps(obj)`` is compact (``separators=(",", ":")``): one value per line,
  used for ``-o jsonl`` and for the one-line error object on stderr.
* ``dumps(obj, indent=2)`` is the ``-o json`` form, for one object *and* for
  arrays.  :func:`json_array_item` renders one element of an array so that a
  streamed array is byte-for-byte what ``json.dumps(rows, indent=2)`` would
  have produced, without ever building the list.

All JSON text is made by ``json.JSONEncoder`` (public API only).  Nothing here
imports rich: the json/jsonl/csv paths must stay cheap.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from enum import Enum
from typing import Any, Final

__all__ = ["dumps", "format_timestamp", "json_array_item", "terminal_safe_json", "to_jsonable"]

# Exact types that JSON represents natively: the common case, tested first.
_NATIVE: frozenset[type] = frozenset({str, int, float, bool, type(None)})

# With ensure_ascii=False, json leaves DEL, the C1 controls (U+0080-U+009F,
# which some terminals obey as CSI/OSC), the bidi embedding/override/isolate
# characters ("Trojan Source") and the JS line separators raw.  Rewriting them
# as \uXXXX escapes is still the same JSON value after parsing, but makes
# `vutf ... --json` safe to look at in a terminal.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def format_timestamp(value: datetime) -> str:
    """``2026-11-26T06:10:04.123456Z``: UTC, always six fractional digits.

    A naive datetime is taken to be UTC already (that is how the SQLite
    column type stores it).
    """
    if value.utcoffset() is not None:
        value = value.astimezone(UTC)
    # isoformat rather than strftime: strftime does not zero-pad years < 1000
    # on every platform; timespec keeps a zero fraction.
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def to_jsonable(value: Any) -> Any:
    """Return ``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    Dataclass instances become dicts of their fields (recursively); datetimes
    become UTC ISO strings; dates ISO; UUIDs strings; enums their ``.value``;
    sets a sorted list.  Anything else raises ``TypeError`` so that a new
    field type is noticed in tests rather than silently ``str()``-ed.
    """
    if type(value) in _NATIVE:
        return value
    # datetime before date: datetime is a subclass of date.
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    # Enum before str/int: a StrEnum member is also a str.
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # dataclasses.fields + getattr, not asdict(): asdict deep-copies every
        # value first, which is wasted work when we convert them anyway.
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        # Sets have no order; sort so that output is stable between runs.
        return sorted((to_jsonable(v) for v in value), key=_sort_key)
    # Subclasses of the native types (that are not enums): plain value.
    # (bool cannot be subclassed, so int covers what is left.)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")


def _key(key: Any) -> str:
    """JSON object keys are strings; convert UUIDs, enums, dates... like values."""
    if isinstance(key, str) and not isinstance(key, Enum):
        return key
    converted = to_jsonable(key)
    return converted if isinstance(converted, str) else json.dumps(converted)


def _sort_key(value: Any) -> tuple[str, str]:
    # Mixed types cannot be compared directly; group by type name, then text.
    return (type(value).__name__, json.dumps(value, sort_keys=True))


def _default(value: Any) -> Any:
    """``json.dumps`` hook: called only for values json cannot encode itself.

    It converts one level; json recurses into the result and calls this hook
    again for nested values, which is cheaper than a full ``to_jsonable`` walk
    over values json already understands.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return to_jsonable(value)


def _escape_unsafe(text: str) -> str:
    if _JSON_UNSAFE.search(text) is None:
        return text
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def terminal_safe_json(data: bytes) -> bytes:
    """UTF-8 JSON text made by someone else (the database) with the escaping :func:`dumps` adds.

    Every character ``_JSON_UNSAFE`` matches is DEL or non-ASCII, so ASCII
    text without DEL (the common case, checked in C) is returned as it is.
    """
    if data.isascii() and b"\x7f" not in data:
        return data
    return _escape_unsafe(data.decode("utf-8")).encode("utf-8")


# One encoder per layout, with json's public ``default`` hook; json.dumps
# would build an equal encoder on every call.
_COMPACT: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default)
_INDENTED: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ": "), indent=2, default=_default
)


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """Serialise ``obj`` (anything :func:`to_jsonable` accepts) to JSON text.

    ``indent=None`` gives the compact one-line form (jsonl, error objects);
    ``indent=2`` the human-readable ``-o json`` form.  Non-ASCII text is kept
    as is (``ensure_ascii=False``) except for terminal-unsafe characters, see
    ``_JSON_UNSAFE``.
    """
    if indent is None:
        encoder = _COMPACT
    elif indent == 2:
        encoder = _INDENTED
    else:
        raise ValueError(f"indent must be None or 2, not {indent!r}")
    try:
        text = encoder.encode(obj)
    except TypeError:
        # json calls ``default`` for values only, never for object keys (a
        # UUID key, say): convert everything first.  This either works or
        # raises to_jsonable's clearer TypeError.
        text = encoder.encode(to_jsonable(obj))
    return _escape_unsafe(text)


def json_array_item(obj: Any) -> str:
    """One element of an ``indent=2`` array, indented one level.

    Joining these with ``",\\n  "`` between ``"[\\n  "`` and ``"\\n]"`` gives
    exactly ``json.dumps(list, indent=2)``.  Replacing newlines is safe because
    JSON text never has a raw newline inside a string.
    """
    return dumps(obj, indent=2).replace("\n", "\n  ")
