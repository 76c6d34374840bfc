"""Verifying the audit log's hash chain: the one place that decides what is intact.

:func:`verify_chain` walks the rows in ascending seq and reports the FIRST
problem, checking each row in this order:

1. ``reordered``: the row's ``prev_hash`` is not its predecessor's
   ``row_hash`` but is the ``row_hash`` of a row with a LARGER seq: the row
   was written after that one and moved in front of it.
2. ``edited``: the row's stored text is not the text vutf writes for it, or
   its hash, recomputed from that text and its stored ``prev_hash``, differs
   from its ``row_hash`` (or ``VUTF_AUDIT_KEY`` is not the key the row was
   written with, in which case row 1 is reported).
3. ``missing``: the seq jumps (row 6 follows row 4); reported at the first
   missing seq (5).
4. ``inserted``: the seq is contiguous and the row's own hash is valid, but
   its ``prev_hash`` is not its predecessor's ``row_hash`` (or the first row
   does not start from the genesis hash): a consistently forged row was
   spliced in (row N or N+1, the detail names both).
5. ``anchor``: the row at the anchor's seq is absent (the log was
   truncated) or has another ``row_hash`` (the chain was rewritten).

Exactness (docs/architecture.md §3): the canonical stored text is the
contract.  Each row's canonical text is built by
:func:`~vutf_cli.security.audit_chain.canonical_row_text` from what is
stored, as it is stored: an id, a timestamp or a JSON text spelled in any
other way than vutf writes it, even with the same parsed value (whitespace,
key order, a repeated key, upper-case hex), gives another text and so
another hash.  A value no vutf could have written (a BLOB, text that is not
UTF-8, a number beyond limits, a year Python cannot hold) is an edit too,
never an error.  On PostgreSQL the ``uuid``, ``timestamptz`` and ``jsonb``
types keep no spelling: their canonical text is rebuilt from their value.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from vutf_cli.db.audit_sql import AUDIT, head_statement, verify_batch_statement
from vutf_cli.domain.views import ChainReport
from vutf_cli.errors import InvalidInput
from vutf_cli.security.audit_chain import (
    GENESIS_HASH,
    canonical_row_text,
    canonical_value_text,
    row_hasher,
)
from vutf_cli.security.audit_fields import CHAIN_FIELDS, HASHED_FIELDS, SCALAR_FIELDS

__all__ = ["verify_chain"]

_HASH_PATTERN: Final = re.compile(r"[0-9a-f]{64}")
# str(uuid.UUID(...)): the only spelling vutf writes.
_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# SQLAlchemy's SQLite storage form of the naive UTC instant.
_SQLITE_TIMESTAMP: Final = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
_INDEX: Final = {name: i for i, name in enumerate((*HASHED_FIELDS, *CHAIN_FIELDS))}
_SEQ, _PREV, _HASH = _INDEX["seq"], _INDEX["prev_hash"], _INDEX["row_hash"]
_SCALARS: Final = tuple((name, _INDEX[name]) for name in SCALAR_FIELDS)
_CHANGES, _METADATA = _INDEX["changes"], _INDEX["metadata"]
_SCALARS_OF: Final = operator.itemgetter(*(index for _name, index in _SCALARS))
_SCALAR_NAMES: Final = tuple(name for name, _index in _SCALARS)


class _NotAsWritten(Exception):
    """A stored value vutf never writes; the row is reported as edited."""


def _scalars(values: Sequence[Any]) -> dict[str, Any]:
    # Types are not checked here: a value of a type vutf never stores there
    # (a BLOB, a REAL) is refused by canonical_row_text or changes the text.
    return dict(zip(_SCALAR_NAMES, _SCALARS_OF(values), strict=True))


def _sqlite_canonical(values: Sequence[Any]) -> str:
    """The canonical text of a row as SQLite stores it; _NotAsWritten if vutf never wrote it."""
    scalars = _scalars(values)
    for name in ("id", "user_id"):
        spelled = scalars[name]
        if spelled is not None and (
            type(spelled) is not str or not _CANONICAL_UUID.fullmatch(spelled)
        ):
            raise _NotAsWritten(f"its {name} is not stored as vutf writes it")
    stored_at = scalars["created_at"]
    if type(stored_at) is not str or not _SQLITE_TIMESTAMP.fullmatch(stored_at):
        raise _NotAsWritten("its created_at is not stored as vutf writes it")
    try:
        datetime.fromisoformat(stored_at)  # a real date and time of day
    except ValueError:
        raise _NotAsWritten("its created_at is not a valid time") from None
    scalars["created_at"] = f"{stored_at[:10]}T{stored_at[11:]}Z"
    changes, metadata = values[_CHANGES], values[_METADATA]
    for json_text in (changes, metadata):
        if json_text is not None and type(json_text) is not str:
            raise _NotAsWritten("its JSON is not stored as text")
    # The JSON texts go in as stored: only the canonical spelling hashes right.
    return canonical_row_text(scalars, changes, metadata)


def _postgresql_json(text: Any) -> str | None:
    if text is None:
        return None
    try:
        return canonical_value_text(json.loads(text))
    except (ValueError, RecursionError):  # a number or a nesting beyond Python's limits
        raise _NotAsWritten("its JSON cannot be read") from None


def _postgresql_canonical(values: Sequence[Any]) -> str:
    """The canonical text of a row read from PostgreSQL (types without spelling)."""
    return canonical_row_text(
        _scalars(values), _postgresql_json(values[_CHANGES]), _postgresql_json(values[_METADATA])
    )


# seq, prev_hash, row_hash, whether the recomputed hash matches, why the row is not as written.
_Checked = tuple[int, Any, Any, bool, str | None]


def _checked_rows(
    session: Session, start_seq: int, batch_size: int, key: str | None
) -> Iterator[_Checked]:
    """Each row from ``start_seq`` up, with its hash recomputed and compared."""
    dialect = session.get_bind().dialect.name
    canonical = _postgresql_canonical if dialect == "postgresql" else _sqlite_canonical
    statement = verify_batch_statement(dialect)
    hash_text = row_hasher(key)
    after = start_seq - 1
    while True:
        batch = _read_batch(session, statement, after, batch_size)
        if isinstance(batch, int):  # a row SQLite's driver cannot decode
            yield batch, None, None, False, "its text is not UTF-8"
            return
        for values in batch:
            seq, prev_hash, row_hash = values[_SEQ], values[_PREV], values[_HASH]
            if type(seq) is not int:  # SQLite keeps a BLOB or a REAL as it is
                yield after + 1, prev_hash, row_hash, False, "its seq is not an integer"
                return
            after = seq
            try:
                if type(prev_hash) is not str or type(row_hash) is not str:
                    raise _NotAsWritten("its hashes are not stored as text")
                text = canonical(values)
            except _NotAsWritten as exc:
                yield seq, prev_hash, row_hash, False, str(exc)
                continue
            except (TypeError, ValueError):
                yield seq, prev_hash, row_hash, False, "it holds a value vutf never writes"
                continue
            yield seq, prev_hash, row_hash, hash_text(prev_hash, text) == row_hash, None
        if len(batch) < batch_size:
            return


def _fetch_all(connection: Any, statement: Any, parameters: dict[str, Any]) -> list[Any]:
    # The statement's columns have no result processing (stored values are
    # wanted as they are), so the cursor's tuples are the rows; Row objects
    # would cost more than the hashing.
    with connection.execute(statement, parameters) as result:
        return list(result.cursor.fetchall())


def _read_batch(session: Session, statement: Any, after: int, limit: int) -> list[Any] | int:
    """The rows of ``statement`` after ``after``; on SQLite, the seq of an undecodable row."""
    parameters = {"after": after, "limit": limit}
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return _fetch_all(connection, statement, parameters)
    try:
        return _fetch_all(connection, statement, parameters)
    except OperationalError:
        # sqlite3 refuses text that is not UTF-8 (the file was edited by hand);
        # find the row by reading the seqs, then each row, one at a time.
        pass
    seqs = session.execute(
        select(AUDIT.c.seq).where(AUDIT.c.seq > after).order_by(AUDIT.c.seq).limit(limit)
    ).scalars()
    for seq in list(seqs):
        try:
            connection.execute(statement, {"after": seq - 1, "limit": 1}).all()
        except OperationalError:
            return int(seq)
    raise InvalidInput("the audit log could not be read")  # pragma: no cover - unreachable


def verify_chain(
    session: Session,
    *,
    key: str | None,
    since_seq: int | None = None,
    anchor: tuple[int, str] | None = None,
    batch_size: int = 2000,
) -> ChainReport:
    """Recompute the chain in ascending seq and report the first problem (module docstring).

    With ``since_seq`` the walk starts there and links to the row before it,
    which must exist.  ``anchor`` is a ``(seq, row_hash)`` recorded earlier:
    that row must still exist with that hash.
    """
    if batch_size < 1:
        raise InvalidInput("the batch size must be at least 1")
    if anchor is not None:
        anchor_seq, anchor_hash = anchor
        if anchor_seq < 1 or not _HASH_PATTERN.fullmatch(anchor_hash):
            raise InvalidInput("an anchor is a positive seq and a 64-hex-digit row hash")
    checked = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None

    def problem(kind: str, seq: int, detail: str) -> ChainReport:
        return ChainReport(
            ok=False,
            checked=checked,
            first_seq=first_seq,
            last_seq=last_seq,
            head_hash=last_hash,
            bad_seq=seq,
            problem=kind,
            detail=detail,
        )

    start_seq = expected_seq = 1
    expected_prev = GENESIS_HASH
    if since_seq is not None and since_seq > 1:
        start_seq = expected_seq = since_seq
        before = session.execute(
            select(AUDIT.c.row_hash).where(AUDIT.c.seq == since_seq - 1)
        ).scalar()
        if before is not None:
            expected_prev = str(before)
        else:
            head = session.execute(head_statement()).first()
            if head is not None and head.seq >= since_seq:
                return problem(
                    "missing",
                    since_seq - 1,
                    f"row {since_seq - 1} is missing, so row {since_seq} cannot be linked",
                )

    anchor_seen = False
    for seq, prev_hash, row_hash, hash_matches, not_as_written in _checked_rows(
        session, start_seq, batch_size, key
    ):
        linked = prev_hash == expected_prev
        if not linked and type(prev_hash) is str:
            later = session.execute(
                select(AUDIT.c.seq)
                .where(AUDIT.c.row_hash == prev_hash, AUDIT.c.seq > seq)
                .order_by(AUDIT.c.seq)
                .limit(1)
            ).scalar()
            if later is not None:
                return problem(
                    "reordered",
                    seq,
                    f"row {seq} links to row {later}, which comes after it: "
                    "rows were moved out of order",
                )
        if not_as_written is not None:
            return problem("edited", seq, f"row {seq} was changed outside vutf: {not_as_written}")
        if not hash_matches:
            return problem(
                "edited",
                seq,
                f"row {seq} no longer matches its hash: its content was changed "
                "(or VUTF_AUDIT_KEY differs from the key it was written with)",
            )
        if seq != expected_seq:
            span = (
                f"row {expected_seq}"
                if seq - expected_seq == 1
                else (f"rows {expected_seq}-{seq - 1}")
            )
            return problem(
                "missing", expected_seq, f"{span} missing: row {seq} follows row {expected_seq - 1}"
            )
        if not linked:
            if expected_prev == GENESIS_HASH:
                detail = f"row {seq} is the first row but does not start from the genesis hash"
            else:
                detail = (
                    f"row {seq} does not link to row {seq - 1} although both hash correctly: "
                    f"a forged row was spliced in (row {seq - 1} or row {seq})"
                )
            return problem("inserted", seq, detail)
        if anchor is not None and seq == anchor[0]:
            anchor_seen = True
            if row_hash != anchor[1]:
                return problem(
                    "anchor",
                    seq,
                    f"row {seq} has another hash than the anchor: the chain was rewritten",
                )
        checked += 1
        first_seq = seq if first_seq is None else first_seq
        last_seq = seq
        last_hash = expected_prev = str(row_hash)
        expected_seq = seq + 1

    if anchor is not None and not anchor_seen:
        anchored = session.execute(
            select(AUDIT.c.row_hash).where(AUDIT.c.seq == anchor[0])
        ).scalar()
        if anchored is None:
            return problem(
                "anchor",
                anchor[0],
                f"row {anchor[0]} named by the anchor does not exist: the log was truncated",
            )
        if anchored != anchor[1]:
            return problem(
                "anchor",
                anchor[0],
                f"row {anchor[0]} has another hash than the anchor: the chain was rewritten",
            )
    return ChainReport(
        ok=True, checked=checked, first_seq=first_seq, last_seq=last_seq, head_hash=last_hash
    )
