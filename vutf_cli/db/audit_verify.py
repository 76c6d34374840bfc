"""Verifying the audit log's hash chain: the one place that decides what is intact.

:func:`verify_chain` walks the rows in ascending seq and reports the FIRST
problem, checking each row in this order:

1. ``reordered``: the row's ``prev_hash`` is not its predecessor's
   ``row_hash`` but is the ``row_hash`` of a row with a LARGER seq: the row
   was written after that one and moved in front of it.
2. ``edited``: the row's stored text is not the text vutf writes for it, or
   its hash, recomputed from that text and its stored ``prev_hash``, differs
   from its ``row_hash``.  ``other_key`` instead when the row's metadata
   names another audit key than this vutf's (``audit_key``, a fingerprint,
   null for "no key"): it cannot be verified here, either because
   ``VUTF_AUDIT_KEY`` is not the key it was written with or because a writer
   without the key made it.  A row that names no key (written before vutf
   recorded it) and does not verify is ``edited``.
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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from vutf_cli.db.audit_sql import AUDIT, head_statement, verify_batch_statement
from vutf_cli.domain.views import ChainReport
from vutf_cli.errors import InvalidInput
from vutf_cli.security.audit_chain import (
    AUDIT_KEY_FIELD,
    GENESIS_HASH,
    audit_key_fingerprint,
    canonical_row_text,
    canonical_value_text,
    canonical_value_texts,
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


def _postgresql_batch_json(batch: Sequence[Sequence[Any]], index: int) -> list[str | None] | None:
    """:func:`_postgresql_json` of column ``index`` of every row of ``batch``, at once.

    One ``json.loads`` of the batch's texts as one JSON array and one pass
    of the canonical encoder (:func:`canonical_value_texts`): the same texts
    as row by row, for a fraction of the calls.  None when some text cannot
    be read: the rows are then done one by one, which names the row.
    """
    texts = [values[index] for values in batch]
    if any(type(text) is not str for text in texts if text is not None):
        return None
    try:
        parsed = json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
    except (ValueError, RecursionError):
        return None
    if len(parsed) != len(texts):  # a text that is more than one JSON value
        return None
    return canonical_value_texts(parsed)


class _NamedKey:
    """The audit key a row's metadata names: its fingerprint (None: written without a key).

    The name is the row's own claim, and the row may have been edited along
    with it: ``refuted`` is set when the claim is checked and false (a row
    naming no key whose plain hash does not match either, or a fingerprint
    vutf never writes), and such a row is ``edited``.
    """

    __slots__ = ("fingerprint", "refuted")

    def __init__(self, fingerprint: str | None) -> None:
        self.fingerprint = fingerprint
        self.refuted = False


# What audit_key_fingerprint writes: 16 lower-case hex digits.
_FINGERPRINT_PATTERN = re.compile(r"[0-9a-f]{16}")


# seq, prev_hash, row_hash, whether the recomputed hash matches, why the row is not as
# written, and (when the hash does not match) the audit key the row names.
_Checked = tuple[int, Any, Any, bool, str | None, _NamedKey | None]


def _named_key(metadata: Any) -> _NamedKey | None:
    """The key the stored ``metadata`` names, or None when it names none (or is unreadable)."""
    try:
        value = json.loads(metadata) if isinstance(metadata, str | bytes) else metadata
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or AUDIT_KEY_FIELD not in value:
        return None
    fingerprint = value[AUDIT_KEY_FIELD]
    if fingerprint is not None and not isinstance(fingerprint, str):
        return None
    return _NamedKey(fingerprint)


def _check_claim(
    named: _NamedKey | None, plain_hash: Callable[[], bool], key: str | None
) -> _NamedKey | None:
    """``named`` with its claim checked where it can be (see :class:`_NamedKey`).

    ``plain_hash`` says whether the row's hash is that of the row without a key.
    """
    if named is None:
        return None
    if named.fingerprint is None:
        named.refuted = bool(key) and not plain_hash()
    elif not _FINGERPRINT_PATTERN.fullmatch(named.fingerprint):
        named.refuted = True
    return named


def _other_key(named: _NamedKey | None, ours: str | None) -> str | None:
    """How the key the row names differs from this vutf's, or None if it does not."""
    if named is None or named.fingerprint == ours:
        return None
    if named.fingerprint is None:
        return f"written without an audit key (this vutf has audit key {ours})"
    # A key this vutf does not have cannot be checked: the row only claims it.
    if ours is None:
        return f"names audit key {named.fingerprint}, which cannot be checked here: " + (
            "this vutf has no VUTF_AUDIT_KEY"
        )
    return (
        f"names another audit key ({named.fingerprint}; this vutf has {ours}), "
        "which cannot be checked here"
    )


def _checked_rows(
    session: Session, start_seq: int, batch_size: int, key: str | None
) -> Iterator[_Checked]:
    """Each row from ``start_seq`` up, with its hash recomputed and compared."""
    dialect = session.get_bind().dialect.name
    canonical = _postgresql_canonical if dialect == "postgresql" else _sqlite_canonical
    statement = verify_batch_statement(dialect)
    hash_text = row_hasher(key)
    plain = row_hasher(None)
    after = start_seq - 1
    # PostgreSQL: the next batch is read in a second thread while this one is
    # hashed (psycopg2 waits for the server without the GIL), so the server's
    # work and vutf's overlap.  Rows are handed out only once that read is
    # over: the caller may query the session between rows, never while the
    # thread uses it.  Not on SQLite: there the read is this process's own
    # CPU, and a second thread measured slower (1.67x the export against 1.48x).
    ahead = ThreadPoolExecutor(max_workers=1) if dialect == "postgresql" else None
    try:
        batch = _read_batch(session, statement, after, batch_size)
        while True:
            if isinstance(batch, int):  # a row SQLite's driver cannot decode
                yield batch, None, None, False, "its text is not UTF-8", None
                return
            upcoming = None
            if ahead is not None and len(batch) == batch_size:
                upcoming = ahead.submit(
                    _read_batch, session, statement, batch[-1][_SEQ], batch_size
                )
            checked: list[_Checked] = []
            changes_texts = metadata_texts = None
            if dialect == "postgresql":
                changes_texts = _postgresql_batch_json(batch, _CHANGES)
                metadata_texts = _postgresql_batch_json(batch, _METADATA)
            for number, values in enumerate(batch):
                seq, prev_hash, row_hash = values[_SEQ], values[_PREV], values[_HASH]
                if type(seq) is not int:  # SQLite keeps a BLOB or a REAL as it is
                    checked.append(
                        (after + 1, prev_hash, row_hash, False, "its seq is not an integer", None)
                    )
                    break
                after = seq
                try:
                    if type(prev_hash) is not str or type(row_hash) is not str:
                        raise _NotAsWritten("its hashes are not stored as text")
                    if changes_texts is not None and metadata_texts is not None:
                        text = canonical_row_text(
                            _scalars(values), changes_texts[number], metadata_texts[number]
                        )
                    else:
                        text = canonical(values)
                except _NotAsWritten as exc:
                    checked.append((seq, prev_hash, row_hash, False, str(exc), None))
                    continue
                except (TypeError, ValueError):
                    checked.append(
                        (
                            seq,
                            prev_hash,
                            row_hash,
                            False,
                            "it holds a value vutf never writes",
                            None,
                        )
                    )
                    continue
                if hash_text(prev_hash, text) == row_hash:
                    checked.append((seq, prev_hash, row_hash, True, None, None))
                else:  # rare: only now is the key the row names looked at
                    named = _check_claim(
                        _named_key(values[_METADATA]),
                        lambda: plain(prev_hash, text) == row_hash,  # noqa: B023 (called at once)
                        key,
                    )
                    checked.append((seq, prev_hash, row_hash, False, None, named))
            following = None if upcoming is None else upcoming.result()
            yield from checked
            if len(checked) < len(batch) or len(batch) < batch_size:
                return  # a seq that is not an integer ends the walk; so does the last batch
            batch = (
                following
                if following is not None
                else _read_batch(session, statement, after, batch_size)
            )
    finally:
        if ahead is not None:
            ahead.shutdown(wait=True)


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


def _unverified(
    problem: Callable[[str, int, str], ChainReport],
    seq: int,
    named: _NamedKey | None,
    ours: str | None,
    *,
    verified_before: bool,
) -> ChainReport:
    """The report for a row whose hash does not match: edited, or written under another key."""
    if named is not None and named.refuted:
        claimed = "no audit key" if named.fingerprint is None else "an audit key vutf never writes"
        return problem(
            "edited",
            seq,
            f"row {seq} no longer matches its hash: its content was changed "
            f"(it names {claimed}, and does not match that either)",
        )
    other = _other_key(named, ours)
    if other is None:
        # A row that names its key (this one) was edited; one that names none may be either.
        unsure = (
            "" if named is not None else " (or VUTF_AUDIT_KEY is not the key it was written with)"
        )
        return problem(
            "edited", seq, f"row {seq} no longer matches its hash: its content was changed{unsure}"
        )
    why = (
        "the rows before it verify with this vutf's key, so either the key was changed here "
        "or a writer without this key made the row"
        if verified_before
        else "set VUTF_AUDIT_KEY to the key it was written with, then verify again"
    )
    return problem("other_key", seq, f"row {seq} cannot be verified: {other}; {why}")


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
    our_key = audit_key_fingerprint(key)
    for seq, prev_hash, row_hash, hash_matches, not_as_written, named in _checked_rows(
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
            return _unverified(problem, seq, named, our_key, verified_before=checked > 0)
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
