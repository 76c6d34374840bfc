"""Turn service results (frozen dataclass views) into JSON-ready values.

This is the one place that decides how values look in machine output
(DESIGN.md section 5):

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

Nothing here imports rich: the json/jsonl/csv paths must stay cheap.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from enum import Enum
from json.encoder import encode_basestring
from typing import Any

__all__ = ["dumps", "format_timestamp", "json_array_item", "terminal_safe_json", "to_jsonable"]

# Exact types that JSON represents natively; checked with ``type(x) in ...``
# first because that is the common case and the cheapest test.
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
    if value.tzinfo is UTC:
        # The common case (what the database layer returns), without a copy.
        return value.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        utc = value
    else:
        utc = value.astimezone(UTC)
    # isoformat rather than strftime: strftime does not zero-pad years < 1000
    # on every platform.
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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


def terminal_safe_json(text: str) -> str:
    """JSON ``text`` made by someone else (the database) with the escaping :func:`dumps` adds.

    Checked in C first: ASCII text without DEL, the common case, is returned as is.
    """
    if text.isascii() and "\x7f" not in text:
        return text
    return _escape_unsafe(text)


class _NotFlat(Exception):
    """A value the flat-object writer leaves to json."""


def _float_text(value: float) -> str:
    if value - value != 0:  # NaN or +-inf: json's own spelling, via the general path
        raise _NotFlat
    return float.__repr__(value)


def _quoted_uuid(value: uuid.UUID) -> str:
    return f'"{value}"'


def _datetime_text(value: datetime) -> str:
    return encode_basestring(format_timestamp(value))


# Exact type -> its text as json.dumps(..., ensure_ascii=False) writes it (after
# the conversions of to_jsonable).  Subclasses, containers and everything else
# take the general path.
_SCALAR_WRITERS: dict[type, Callable[[Any], str]] = {
    str: encode_basestring,
    bool: lambda value: "true" if value else "false",
    type(None): lambda _value: "null",
    int: int.__repr__,
    float: _float_text,
    datetime: _datetime_text,
    uuid.UUID: _quoted_uuid,
}

# '  "key": ' for each (margin, key) seen; listings repeat the same few keys.
_KEY_PREFIXES: dict[tuple[str, str], str] = {}
_KEY_PREFIXES_MAX = 4096


def _key_prefix(margin: str, key: Any) -> str:
    prefix = _KEY_PREFIXES.get((margin, key))
    if prefix is None:
        if type(key) is not str:
            raise _NotFlat
        prefix = f"{margin}  {encode_basestring(key)}: "
        if len(_KEY_PREFIXES) < _KEY_PREFIXES_MAX:
            _KEY_PREFIXES[(margin, key)] = prefix
    return prefix


def _flat_object_indented(record: dict[Any, Any], margin: str) -> str | None:
    """``json.dumps(record, indent=2)`` (each new line after ``margin``) for a flat object.

    A row of a listing is a dict of scalars: written directly, it costs a
    fraction of json's pure-Python indenting encoder.  None when ``record``
    holds anything but string keys and the scalars of ``_SCALAR_WRITERS``.
    """
    if not record:
        return "{}"
    writers = _SCALAR_WRITERS
    try:
        lines = [
            _key_prefix(margin, key) + writers[type(value)](value) for key, value in record.items()
        ]
    except (KeyError, _NotFlat):
        return None
    return "{\n" + ",\n".join(lines) + f"\n{margin}}}"


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """Serialise ``obj`` (anything :func:`to_jsonable` accepts) to JSON text.

    ``indent=None`` gives the compact one-line form (jsonl, error objects);
    ``indent=2`` the human-readable ``-o json`` form.  Non-ASCII text is kept
    as is (``ensure_ascii=False``) except for terminal-unsafe characters, see
    ``_JSON_UNSAFE``.
    """
    if indent == 2 and type(obj) is dict:
        flat = _flat_object_indented(obj, "")
        if flat is not None:
            return _escape_unsafe(flat)
    separators = (",", ":") if indent is None else (",", ": ")
    try:
        text = json.dumps(
            obj, ensure_ascii=False, separators=separators, indent=indent, default=_default
        )
    except TypeError:
        # Fast path failed, e.g. on a dict with UUID keys (json's default hook
        # is not called for keys).  The full walk either fixes it or raises a
        # clearer TypeError.
        text = json.dumps(
            to_jsonable(obj), ensure_ascii=False, separators=separators, indent=indent
        )
    return _escape_unsafe(text)


def json_array_item(obj: Any) -> str:
    """One element of an ``indent=2`` array, indented one level.

    Joining these with ``",\\n  "`` between ``"[\\n  "`` and ``"\\n]"`` gives
    exactly ``json.dumps(list, indent=2)``.  Replacing newlines is safe because
    JSON text never has a raw newline inside a string.
    """
    if type(obj) is dict:
        flat = _flat_object_indented(obj, "  ")
        if flat is not None:
            return _escape_unsafe(flat)
    return dumps(obj, indent=2).replace("\n", "\n  ")
