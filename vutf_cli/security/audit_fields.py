"""The audit log's fields: their names and their order, in one place.

Everything that spells the fields of an audit row takes them from here: the
hash chain (:data:`HASHED_FIELDS`), the listing and the export (the order of
:data:`ENTRY_FIELDS` is the order of the keys of ``audit list -o jsonl`` and
of ``audit export``), and the SQL that reads and writes the rows.  Each name
is the column name (``metadata``; the ORM attribute is ``meta``).  See
docs/architecture.md §3 for the chain they feed.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CHAIN_FIELDS",
    "ENTRY_FIELDS",
    "HASHED_FIELDS",
    "JSON_FIELDS",
    "SCALAR_FIELDS",
    "TEXT_FIELDS",
    "UUID_FIELDS",
]

# What a row's hash covers, in column order.  A missing field hashes as null.
HASHED_FIELDS: Final[tuple[str, ...]] = (
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
# The two links of the chain, stored after the hashed fields.
CHAIN_FIELDS: Final[tuple[str, ...]] = ("prev_hash", "row_hash")
# Every field of a row, in the order a listing or an export shows them.
ENTRY_FIELDS: Final[tuple[str, ...]] = (*HASHED_FIELDS, *CHAIN_FIELDS)

# The hashed fields that hold nested JSON; every other one holds a scalar.
JSON_FIELDS: Final[tuple[str, ...]] = ("changes", "metadata")
SCALAR_FIELDS: Final[tuple[str, ...]] = tuple(n for n in HASHED_FIELDS if n not in JSON_FIELDS)
# Scalars stored as UUIDs, and scalars stored as text (the rest: seq,
# created_at, duration_ms).
UUID_FIELDS: Final[tuple[str, ...]] = ("id", "user_id")
TEXT_FIELDS: Final[tuple[str, ...]] = (
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "status",
    "error_message",
    "ip_address",
    "user_agent",
)
