"""The audit writer's fast paths hash and store exactly what the original code did.

The hash chain format is a contract: rows written before these fast paths
must still verify, and rows written with them must verify with any earlier
vutf.  So each fast path is compared, for generated inputs of every kind
(nested containers, subclasses, datetimes in any zone, UUIDs, secrets,
refused values), against a verbatim copy of the code it replaced:

* ``canonical_text_of_json_row`` (writer and verifier) and the reworked
  ``canonical_json``/``jsonable``/``format_timestamp``: same bytes, or the
  same exception;
* ``stored_json`` after the services' ``scrub_secrets``: the same value as the
  original scrub-then-store, or the same exception with the same message.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vutf_cli.db.repositories.audit import stored_json
from vutf_cli.errors import InvalidInput
from vutf_cli.security.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_json,
    canonical_text_of_json_row,
    compute_row_hash,
    format_timestamp,
    hash_canonical,
    jsonable,
)
from vutf_cli.services.audit_trail import scrub_secrets


# -- the code the fast paths replaced, verbatim ------------------------------------------
def reference_format_timestamp(value: datetime) -> str:
    utc = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def reference_jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        return reference_format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit JSON object keys must be strings, got {type(key).__name__}")
            out[key] = reference_jsonable(item)
        return out
    if isinstance(value, list | tuple):
        return [reference_jsonable(item) for item in value]
    raise TypeError(f"cannot put a {type(value).__name__} into the audit chain")


def reference_canonical_json(content: Mapping[str, Any]) -> bytes:
    document = {name: reference_jsonable(content.get(name)) for name in HASHED_FIELDS}
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


_SECRET_KEY_PARTS = ("password", "secret", "token", "key_hash")


def reference_scrub_secrets(value: Any) -> Any:
    def is_secret(name: str) -> bool:
        lowered = name.lower()
        return lowered == "key" or any(part in lowered for part in _SECRET_KEY_PARTS)

    if isinstance(value, Mapping):
        return {
            key: reference_scrub_secrets(item)
            for key, item in value.items()
            if not (isinstance(key, str) and is_secret(key))
        }
    if isinstance(value, list | tuple):
        return [reference_scrub_secrets(item) for item in value]
    return value


def _reference_stored_number(value: float) -> float | int:
    if not math.isfinite(value):
        raise InvalidInput(f"audit data cannot hold the number {value!r}")
    if value == 0:
        return 0.0
    spelled = repr(value)
    if "e" in spelled and int(spelled.partition("e")[2]) >= 0:
        return int(Decimal(spelled))
    return value


def _reference_stored_text(value: str) -> str:
    if "\x00" in value:
        raise InvalidInput("audit data cannot hold a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("audit data must be valid Unicode (lone surrogate found)") from None
    return value


def _reference_stored_form(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return _reference_stored_number(value)
    if isinstance(value, str):
        return _reference_stored_text(value)
    if isinstance(value, dict):
        return {
            _reference_stored_text(key): _reference_stored_form(item) for key, item in value.items()
        }
    return [_reference_stored_form(item) for item in value]


def reference_stored_json(value: Any) -> Any:
    return _reference_stored_form(reference_jsonable(value))


# -- comparing outcomes ------------------------------------------------------------------
def typed(value: Any) -> Any:
    """``value`` as a tree that tells apart what ``==`` does not (1 / 1.0 / True, -0.0 / 0.0,
    str and its subclasses, key order)."""
    if type(value) is dict:
        return ("dict", [(typed(key), typed(item)) for key, item in value.items()])
    if type(value) is list:
        return ("list", [typed(item) for item in value])
    return (type(value), repr(value))


def outcome(function: Callable[[], Any]) -> Any:
    """What calling ``function`` gives: ("ok", typed result) or ("error", type, message)."""
    try:
        result = function()
    except (InvalidInput, TypeError, ValueError) as exc:
        return ("error", type(exc), str(exc))
    return ("ok", typed(result))


def raised(function: Callable[[], Any]) -> Any:
    """("ok", result) or ("error", exception type): bytes compared exactly, errors by type."""
    try:
        return ("ok", function())
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        return ("error", type(exc))


# -- generated values --------------------------------------------------------------------
class Text(str):
    pass


class Number(int):
    pass


class Level(IntEnum):
    LOW = 1


ZONES = st.sampled_from(
    [
        None,
        UTC,
        timezone(timedelta(0)),  # UTC, but not the UTC object
        timezone(timedelta(hours=5, minutes=30)),
        timezone(-timedelta(hours=8)),
        timezone(timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)),
    ]
)
# Lone surrogates and controls (NUL among them) are refused or escaped:
# drawn often, not as 2 in a million code points.
AWKWARD_CHARACTER = st.characters(categories=["Cs", "Cc", "Zl", "Zp"])
TEXTS = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(codec=None) | AWKWARD_CHARACTER, max_size=6),
    st.sampled_from(
        ["", "null", '{"a":1}', '"q"', "\\", "\u2028\u2029", "é✓🎉", "\x1b[31m", "a\ud800", "\x00"]
    ),
)
FLOATS = st.one_of(
    st.floats(),
    st.sampled_from([1e20, 1e16, 1e-7, 1.5e300, 5e-324, -0.0, 0.0, 123.456, -1e22]),
)
KEYS = st.one_of(
    TEXTS,
    st.sampled_from(
        ["password", "Password_hint", "api_TOKEN", "key", "KEY", "key_hash", "secret", "keys", "id"]
    ),
    st.builds(Text, st.sampled_from(["name", "token"])),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    FLOATS,
    TEXTS,
    st.builds(Text, TEXTS),
    st.builds(Number, st.integers()),
    st.just(Level.LOW),
    st.builds(lambda moment, zone: moment.replace(tzinfo=zone), st.datetimes(), ZONES),
    st.dates(),
    st.uuids(),
)
UNSUPPORTED = st.sampled_from([{1, 2}, b"bytes", Decimal("1.5"), object()])


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(KEYS, children, max_size=4),
        st.dictionaries(KEYS, children, max_size=3).map(OrderedDict),
        st.dictionaries(KEYS, children, max_size=3).map(MappingProxyType),
        st.dictionaries(st.integers() | st.none(), children, min_size=1, max_size=2),
    )


# Anything a caller might hand the audit log, refused values included.
ANY_VALUE = st.recursive(st.one_of(LEAVES, UNSUPPORTED), _containers, max_leaves=20)
# Only what jsonable accepts.
JSONABLE_VALUE = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
        st.dictionaries(KEYS, children, max_size=3).map(MappingProxyType),
    ),
    max_leaves=20,
)
# Plain JSON values, as json.loads returns them.
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), FLOATS, st.text(max_size=8)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXTS, children, max_size=4),
    max_leaves=20,
)


@st.composite
def stored_values(draw: st.DrawFn) -> Any:
    """What the writer hashes as changes/metadata: stored_json's output, or parsed JSON."""
    choice = draw(st.sampled_from(["stored", "parsed", "none"]))
    if choice == "none":
        return None
    if choice == "parsed":
        value = draw(JSON_VALUE)
        try:
            return json.loads(json.dumps(value))
        except ValueError:
            return value  # NaN/Infinity: both paths must refuse it alike
    value = draw(JSONABLE_VALUE)
    try:
        return reference_stored_json(value)
    except (InvalidInput, TypeError):
        return draw(JSON_VALUE)


SCALARS = st.one_of(LEAVES, st.lists(LEAVES, max_size=2), st.dictionaries(KEYS, LEAVES, max_size=2))


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": draw(st.uuids() | st.uuids().map(str)),
        "seq": draw(st.integers(min_value=1)),
        "created_at": draw(st.builds(lambda m, z: m.replace(tzinfo=z), st.datetimes(), ZONES)),
        "actor": draw(TEXTS),
        "user_id": draw(st.none() | st.uuids()),
        "action": "user.create",
        "resource_type": draw(TEXTS),
        "resource_id": draw(st.none() | TEXTS),
        "status": "success",
        "changes": draw(stored_values()),
        "metadata": draw(stored_values()),
        "error_message": draw(st.none() | TEXTS),
        "duration_ms": draw(st.none() | st.integers(min_value=0)),
        "ip_address": draw(st.none() | TEXTS),
        "user_agent": draw(st.none() | TEXTS),
        "prev_hash": "0" * 64,
    }
    # Any scalar field may hold anything jsonable accepts (or be missing).
    for name in draw(st.lists(st.sampled_from(HASHED_FIELDS[:9]), max_size=3)):
        if name not in ("changes", "metadata"):
            row[name] = draw(SCALARS)
    for name in draw(st.lists(st.sampled_from(HASHED_FIELDS), max_size=2)):
        row.pop(name, None)
    return row


# -- the tests ---------------------------------------------------------------------------
@settings(max_examples=400)
@given(rows())
def test_writer_canonical_text_is_the_canonical_json_of_before(row: dict[str, Any]) -> None:
    before = raised(lambda: reference_canonical_json(row))
    assert raised(lambda: canonical_json(row)) == before
    assert raised(lambda: canonical_text_of_json_row(row).encode("utf-8")) == before
    if before[0] == "ok":
        assert hash_canonical(GENESIS_HASH, before[1], "k") == compute_row_hash(
            GENESIS_HASH, row, "k"
        )


@settings(max_examples=400)
@given(ANY_VALUE)
def test_scrubbed_then_stored_is_what_the_original_code_stored(value: Any) -> None:
    before = outcome(lambda: reference_stored_json(reference_scrub_secrets(value)))
    assert outcome(lambda: stored_json(scrub_secrets(value))) == before
    assert outcome(lambda: stored_json(value)) == outcome(lambda: reference_stored_json(value))


@settings(max_examples=300)
@given(ANY_VALUE)
def test_jsonable_is_unchanged(value: Any) -> None:
    assert outcome(lambda: jsonable(value)) == outcome(lambda: reference_jsonable(value))


@settings(max_examples=300)
@given(st.datetimes(), ZONES)
def test_format_timestamp_is_unchanged(moment: datetime, zone: timezone | None) -> None:
    value = moment.replace(tzinfo=zone)
    assert raised(lambda: format_timestamp(value)) == raised(
        lambda: reference_format_timestamp(value)
    )


def test_the_chain_format_is_pinned() -> None:
    """Hashes computed by the code before the fast paths, for one varied row."""
    row = {
        "id": uuid.UUID("0b6f7c1e-7a35-4f43-9a55-2f7d1d8f9a10"),
        "seq": 7,
        "created_at": datetime(2024, 5, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
        "actor": "cli:zoë",
        "user_id": None,
        "action": "user.update",
        "resource_type": "user",
        "resource_id": 'r"1\\',
        "status": "failure",
        "changes": {"b": [1, 2.5, None, True, "\u2028"], "a": {"z": "é🎉", "y": -0.0}},
        "metadata": {"host": "h", "n": 10**20},
        "error_message": "tab\tnl\n",
        "duration_ms": 0,
        "ip_address": "::1",
        "user_agent": None,
    }
    plain = "65dee1fac4cd67f47a5ed66d9b9857c1dbff228853127a29d2e317e60963d11d"
    keyed = "0cd4640e96ee5b89539f0b50c78ba82e1610a00003222a2ff0ebf9c35f6adef8"
    assert compute_row_hash(GENESIS_HASH, row) == plain
    assert compute_row_hash("a" * 64, row, "k3y") == keyed
    canonical = canonical_text_of_json_row(row).encode("utf-8")
    assert hash_canonical(GENESIS_HASH, canonical) == plain
    assert hash_canonical("a" * 64, canonical, "k3y") == keyed
