"""Reading the audit log, behind `vutf audit`: list, show, follow, export, verify, head, stats.

Filters
    :func:`build_query` validates what the command line gave (status, time
    specs such as ``2h`` or ``yesterday``, action globs) into an
    :class:`AuditQuery`; inside a transaction :func:`resolve_filters` turns
    ``--user`` (username, email or id, deleted users included) into a user id.

Every listing is one statement shape, built by :func:`page_statement`: the
filters, an optional keyset bound on ``seq``, ``ORDER BY seq``, ``LIMIT``.
Each filter leads one of the schema's ``(column, seq)`` indexes, so the
planner can always serve it from an index.  Two filters cannot lead an index
on their own, and are rewritten here so they can:

* an action glob (``user.*``, ``*.create``): ``LIKE`` is not index-served on
  PostgreSQL under a linguistic collation, and a range rewrite
  (``action >= 'user.' AND action < 'user/'``) is only exact under byte
  order.  Instead the few distinct actions are enumerated with a loose index
  scan (a recursive CTE that hops through ``ix_audit_log_action_seq``), the
  glob is matched against those, and the rows are fetched with
  ``action IN (...)`` (``= ANY(ARRAY)`` on PostgreSQL) through the same index.
  Exact under any collation, and any glob (not just prefixes) is served.
* ``--resource-id`` without ``--resource-type``: the index is
  ``(resource_type, resource_id, seq)``, so the distinct resource types are
  enumerated the same way and the lookup becomes
  ``resource_type IN (...) AND resource_id = ?``.

Cursors are opaque to the user: the seq of the last row shown and the
direction, base64url-encoded.  New rows get larger seqs, so a newest-first
walk never repeats or skips a row while others append.

Exports run in ONE read-only transaction (PostgreSQL: ``REPEATABLE READ``, so
every batch sees the same snapshot; SQLite: a WAL read transaction, which is
a snapshot too), in keyset batches of Core rows, so memory stays constant
whatever the row count.  The batches are the same :func:`page_statement` as
``list`` (rather than the repository's ``iterate``, whose plain ``LIKE`` is
not index-served), so an export is row for row what ``list --reverse`` shows.

``head`` of an empty log is ``0`` with the genesis hash (64 zeros), so
``$(vutf audit head)`` always yields something to record; as an anchor it
checks nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Row,
    Select,
    Table,
    any_,
    func,
    select,
    text,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from vutf_cli.db.audit_json import (
    finish_postgres_line,
    postgres_lines_statement,
    seq_of_line,
    sqlite_line_column,
)
from vutf_cli.db.copy_out import copy_rows
from vutf_cli.db.database import Database, translate_error
from vutf_cli.db.models import AUDIT_STATUSES, AuditLog
from vutf_cli.db.repositories.audit import STATS_DIMENSIONS, glob_to_like
from vutf_cli.db.resilience import ErrorKind, classify, describe
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.validation import parse_time_spec, shorten_for_message
from vutf_cli.domain.views import AuditEntry
from vutf_cli.errors import DatabaseUnavailable, IntegrityFailure, InvalidInput, NotFound, VutfError
from vutf_cli.security.audit_chain import GENESIS_HASH

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIST_LIMIT",
    "MAX_SEQ",
    "STATS_DIMENSIONS",
    "AuditHead",
    "AuditPage",
    "AuditQuery",
    "AuditStats",
    "ExportStream",
    "Following",
    "JsonLinePart",
    "JsonLinesExport",
    "ResolvedFilters",
    "VerifyResult",
    "build_query",
    "chain_error",
    "decode_cursor",
    "encode_cursor",
    "follow",
    "head",
    "list_entries",
    "open_export",
    "open_json_lines_export",
    "page_statement",
    "parse_anchor",
    "parse_seq_or_id",
    "resolve_filters",
    "show",
    "stats",
    "stats_dimension",
    "verify",
]

AUDIT: Final = cast(Table, AuditLog.__table__)

DEFAULT_LIMIT: Final = 50
# One page is held in memory; more than this is what `vutf audit export` is for.
MAX_LIST_LIMIT: Final = 100_000
# seq is a signed 64-bit integer on both dialects: a larger number is no seq
# (and SQLite's driver cannot even send it).
MAX_SEQ: Final = 2**63 - 1
# Follow: polling faster than this only loads the database; a pause longer
# than an hour, or a timeout beyond a year, is a typo.
MIN_FOLLOW_INTERVAL: Final = 0.01
MAX_FOLLOW_INTERVAL: Final = 3600.0
MAX_FOLLOW_TIMEOUT: Final = 366 * 86400.0
EXPORT_BATCH: Final = 1000
# How many new rows one follow poll fetches before looking again at once.
FOLLOW_BATCH: Final = 500
# Longest wait between two polls while the database is unreachable.
MAX_OUTAGE_BACKOFF: Final = 30.0

_ACTION_FILTER = re.compile(r"[a-z0-9_.*?]+")
_ANCHOR = re.compile(r"(\d+):([0-9a-fA-F]{64})")
_CURSOR_PREFIX: Final = "vutf-audit-1"
# Longest text filter each column can match (its String length).
_FILTER_MAX_LENGTHS: Final = {
    "--actor": 255,
    "--user": 255,  # a username (100), an email (254) or an id (36)
    "--action": 100,
    "--resource-type": 50,
    "--resource-id": 255,
}
_SEQ_DIGITS = re.compile(r"[0-9]+")


# -- filters ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Validated filters, as given (``user`` not yet resolved to an id)."""

    actor: str | None = None
    user: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResolvedFilters:
    """The filters as the SQL needs them (``user_id`` instead of a user identifier)."""

    actor: str | None = None
    user_id: uuid.UUID | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def action_is_glob(self) -> bool:
        return self.action is not None and ("*" in self.action or "?" in self.action)


def _non_empty(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:
        raise InvalidInput(f"{option} must not be empty")
    return stripped


def _filter_text(option: str, value: str | None) -> str | None:
    """A text filter, stripped, that every backend can send and a column can hold.

    Refused (exit 2) here rather than by the driver half-way through a
    command: longer than the column (nothing could match), a NUL (PostgreSQL
    text cannot hold one), or lone surrogates (undecodable argv bytes, which
    are no UTF-8).
    """
    text_ = _non_empty(option, value)
    if text_ is None:
        return None
    longest = _FILTER_MAX_LENGTHS[option]
    if len(text_) > longest:
        raise InvalidInput(
            f"{option} is too long: at most {longest} characters (got {len(text_)})",
            hint="no audit entry can hold a longer value",
        )
    if "\x00" in text_:
        raise InvalidInput(f"{option} must not contain a NUL character")
    if any("\ud800" <= ch <= "\udfff" for ch in text_):
        raise InvalidInput(
            f"{option} {shorten_for_message(text_)} is not valid UTF-8 text",
            hint="check the terminal's or the script's character encoding",
        )
    return text_


def _check_seq(option: str, seq: int) -> int:
    """``seq`` if it can be an audit sequence number (1 to 2**63-1), else InvalidInput."""
    if not 1 <= seq <= MAX_SEQ:
        raise InvalidInput(f"{option} must be between 1 and {MAX_SEQ} (got {seq})")
    return seq


def parse_status(value: str | None) -> str | None:
    """``success``, ``failure`` or ``error`` (case-insensitive), else InvalidInput."""
    status = _non_empty("--status", value)
    if status is None:
        return None
    status = status.lower()
    if status not in AUDIT_STATUSES:
        raise InvalidInput(
            f"invalid status {shorten_for_message(value or '')}",
            hint="use one of: " + ", ".join(AUDIT_STATUSES),
        )
    return status


def _parse_action(value: str | None) -> str | None:
    action = _filter_text("--action", value)
    if action is None:
        return None
    # Actions are stored lower-case (user.create); a filter only ever uses
    # their characters plus the two glob wildcards, so globs mean the same
    # on both dialects.
    action = action.lower()
    if not _ACTION_FILTER.fullmatch(action):
        raise InvalidInput(
            f"invalid action filter {shorten_for_message(action)}",
            hint="give an action such as user.create, or a glob such as user.* or *.create",
        )
    return action


def _parse_time(option: str, value: str | None, now: datetime) -> datetime | None:
    spec = _non_empty(option, value)
    if spec is None:
        return None
    try:
        return parse_time_spec(spec, now)
    except InvalidInput as exc:
        raise InvalidInput(f"{option}: {exc.message}", hint=exc.hint) from None


def build_query(
    *,
    actor: str | None = None,
    user: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    now: datetime | None = None,
) -> AuditQuery:
    """Validate command-line filters into an :class:`AuditQuery`.

    Relative times count back from ``now`` (default: the clock); ``since`` is
    inclusive, ``until`` exclusive.
    """
    now = now or utcnow()
    query = AuditQuery(
        actor=_filter_text("--actor", actor),
        user=_filter_text("--user", user),
        action=_parse_action(action),
        resource_type=_filter_text("--resource-type", resource_type),
        resource_id=_filter_text("--resource-id", resource_id),
        status=parse_status(status),
        since=_parse_time("--since", since, now),
        until=_parse_time("--until", until, now),
    )
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise InvalidInput("--since must be earlier than --until")
    return query


def _as_uuid(text_: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text_)
    except ValueError:
        return None


def resolve_filters(uow: UnitOfWork, query: AuditQuery) -> ResolvedFilters:
    """``query`` with ``--user`` looked up (deleted users too: their history stays visible).

    An unknown username or email is NotFound (exit 3).  A user id is taken as
    it is even when no user has it any more: the audit log outlives purged
    users, and their id is then the only way to ask for their history.
    """
    user_id: uuid.UUID | None = None
    if query.user is not None:
        user = uow.users.get_by_identifier(query.user, include_deleted=True)
        if user is not None:
            user_id = user.id
        else:
            user_id = _as_uuid(query.user)
            if user_id is None:
                raise NotFound(
                    f"user {shorten_for_message(query.user)} not found",
                    hint="give a username, an email or a user id",
                )
    return ResolvedFilters(
        actor=query.actor,
        user_id=user_id,
        action=query.action,
        resource_type=query.resource_type,
        resource_id=query.resource_id,
        status=query.status,
        since=query.since,
        until=query.until,
    )


# -- the statement -------------------------------------------------------------------
def _distinct_values(column_name: str) -> CTE:
    """Every distinct value of an indexed column, by a loose index scan.

    Each step fetches the next larger value with ``ORDER BY column LIMIT 1``,
    one index descent per distinct value, instead of reading every row.  The
    last step yields NULL, which callers filter out.
    """
    column = AUDIT.c[column_name]
    first = select(select(column).order_by(column).limit(1).scalar_subquery().label("value"))
    values = first.cte(f"audit_{column_name}_values", recursive=True)
    following = select(
        select(column)
        .where(column > values.c.value)
        .order_by(column)
        .limit(1)
        .scalar_subquery()
        .label("value")
    ).where(values.c.value.is_not(None))
    return values.union_all(following)


def _in_values(column_name: str, values: Select[Any], dialect: str) -> ColumnElement[bool]:
    """``column IN (values)``, in the form each planner turns into index lookups."""
    column = AUDIT.c[column_name]
    if dialect == "postgresql":
        # = ANY(ARRAY(subquery)) is an InitPlan whose result is an index
        # condition; IN (subquery) is planned as a join, possibly over a Seq Scan.
        return column == any_(func.array(values.scalar_subquery()))
    return column.in_(values)


def filter_conditions(filters: ResolvedFilters, dialect: str) -> list[ColumnElement[bool]]:
    """WHERE conditions for ``filters``, shaped so that each is index-served (module docstring)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.actor is not None:
        conditions.append(AUDIT.c.actor == filters.actor)
    if filters.user_id is not None:
        conditions.append(AUDIT.c.user_id == filters.user_id)
    if filters.action is not None:
        if filters.action_is_glob:
            actions = _distinct_values("action")
            value = actions.c.value
            matches = (
                value.like(glob_to_like(filters.action), escape="\\")
                if dialect == "postgresql"
                # SQLite's LIKE ignores case; GLOB does not (and the action
                # filter holds no GLOB metacharacter but * and ?).
                else value.op("GLOB")(filters.action)
            )
            known = select(value).where(value.is_not(None), matches)
            conditions.append(_in_values("action", known, dialect))
        else:
            conditions.append(AUDIT.c.action == filters.action)
    if filters.resource_type is not None:
        conditions.append(AUDIT.c.resource_type == filters.resource_type)
    if filters.resource_id is not None:
        if filters.resource_type is None:
            types = _distinct_values("resource_type")
            known = select(types.c.value).where(types.c.value.is_not(None))
            conditions.append(_in_values("resource_type", known, dialect))
        conditions.append(AUDIT.c.resource_id == filters.resource_id)
    if filters.status is not None:
        conditions.append(AUDIT.c.status == filters.status)
    if filters.since is not None:
        conditions.append(AUDIT.c.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(AUDIT.c.created_at < filters.until)
    return conditions


def page_statement(
    filters: ResolvedFilters,
    dialect: str,
    *,
    descending: bool,
    after_seq: int | None,
    limit: int,
) -> Select[Any]:
    """The one statement every listing runs: filters, keyset bound, seq order, limit."""
    statement = select(AUDIT).where(*filter_conditions(filters, dialect))
    if after_seq is not None:
        statement = statement.where(
            AUDIT.c.seq < after_seq if descending else AUDIT.c.seq > after_seq
        )
    order = AUDIT.c.seq.desc() if descending else AUDIT.c.seq.asc()
    return statement.order_by(order).limit(limit)


def entry_from_row(row: Row[Any]) -> AuditEntry:
    """An AuditEntry from a Core row of ``audit_log`` (no ORM identity map involved)."""
    values = row._mapping
    return AuditEntry(
        id=values["id"],
        seq=int(values["seq"]),
        created_at=values["created_at"],
        actor=values["actor"],
        user_id=values["user_id"],
        action=values["action"],
        resource_type=values["resource_type"],
        resource_id=values["resource_id"],
        status=values["status"],
        changes=values["changes"],
        metadata=values["metadata"],
        error_message=values["error_message"],
        duration_ms=values["duration_ms"],
        ip_address=values["ip_address"],
        user_agent=values["user_agent"],
        prev_hash=values["prev_hash"],
        row_hash=values["row_hash"],
    )


def _fetch(
    uow: UnitOfWork,
    filters: ResolvedFilters,
    *,
    descending: bool,
    after_seq: int | None,
    limit: int,
) -> list[AuditEntry]:
    statement = page_statement(
        filters, uow.dialect, descending=descending, after_seq=after_seq, limit=limit
    )
    return [entry_from_row(row) for row in uow.session.execute(statement)]


# -- cursors -----------------------------------------------------------------------
def encode_cursor(seq: int, *, descending: bool) -> str:
    raw = f"{_CURSOR_PREFIX}:{'d' if descending else 'a'}:{seq}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *, descending: bool) -> int:
    """The seq a cursor continues after; InvalidInput if it is not one of ours."""
    invalid = InvalidInput(
        f"invalid cursor {shorten_for_message(cursor)}",
        hint="pass the value printed after 'next cursor:' by the previous page",
    )
    text_ = cursor.strip()
    if len(text_) > 64:  # ours are about 40 characters
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid from None
    prefix, _, rest = raw.partition(":")
    direction, _, seq_text = rest.partition(":")
    if (
        prefix != _CURSOR_PREFIX
        or direction not in ("a", "d")
        or not _SEQ_DIGITS.fullmatch(seq_text)
        or not 0 <= int(seq_text) <= MAX_SEQ
    ):
        raise invalid
    if (direction == "d") != descending:
        order = "newest first" if direction == "d" else "oldest first (--reverse)"
        raise InvalidInput(
            f"this cursor continues a listing ordered {order}",
            hint="repeat the same options as for the first page",
        )
    return int(seq_text)


# -- list, show --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: tuple[AuditEntry, ...]
    next_cursor: str | None  # None on the last page


def list_entries(
    db: Database,
    query: AuditQuery,
    *,
    descending: bool = True,
    after_seq: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> AuditPage:
    """One page of entries, newest first unless ``descending`` is False.

    ``after_seq`` is where the previous page ended (:func:`decode_cursor` of
    its ``next_cursor``).
    """
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInput(
            f"--limit must be between 1 and {MAX_LIST_LIMIT} (got {limit})",
            hint="`vutf audit export` streams any number of entries",
        )
    if after_seq is not None and not 0 <= after_seq <= MAX_SEQ:
        raise InvalidInput("invalid cursor: its seq is out of range")

    def work(uow: UnitOfWork) -> AuditPage:
        filters = resolve_filters(uow, query)
        rows = _fetch(uow, filters, descending=descending, after_seq=after_seq, limit=limit + 1)
        if len(rows) > limit:
            rows = rows[:limit]
            return AuditPage(tuple(rows), encode_cursor(rows[-1].seq, descending=descending))
        return AuditPage(tuple(rows), None)

    return db.run(work, read_only=True)


def parse_seq_or_id(text_: str) -> str:
    """``text_`` as a seq (ASCII digits, 1 to 2**63-1) or an entry id (a UUID), canonical.

    InvalidInput (exit 2) for anything else, echoed shortened.
    """
    key = text_.strip()
    if _SEQ_DIGITS.fullmatch(key):
        # Measured as text first: int() refuses over 4,300 digits, and a
        # 10 MB string of digits is not worth converting anyway.
        digits = key.lstrip("0") or "0"
        if len(digits) > len(str(MAX_SEQ)) or not 1 <= int(digits) <= MAX_SEQ:
            raise InvalidInput(
                f"audit sequence number out of range: {shorten_for_message(key)}",
                hint=f"a seq is between 1 and {MAX_SEQ}",
            )
        return digits
    parsed = _as_uuid(key) if len(key) <= 64 else None
    if parsed is None:
        raise InvalidInput(
            f"{shorten_for_message(key)} is neither an audit sequence number nor an entry id",
            hint="give the seq shown by `vutf audit list`, or the entry's UUID",
        )
    return str(parsed)


def show(db: Database, seq_or_id: str) -> AuditEntry:
    """The entry with that seq or id (NotFound, exit 3, if there is none)."""
    key = parse_seq_or_id(seq_or_id)

    def work(uow: UnitOfWork) -> AuditEntry:
        row = uow.audit.get(key)
        if row is None:
            raise NotFound(f"audit entry {key!r} not found")
        return uow.audit.to_entry(row)

    return db.run(work, read_only=True)


# -- head, verify ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditHead:
    """The last row's seq and hash; ``0`` and the genesis hash for an empty log."""

    seq: int
    row_hash: str

    @property
    def anchor(self) -> str:
        """``seq:hash``, the form ``vutf audit verify --anchor`` takes."""
        return f"{self.seq}:{self.row_hash}"


def head(db: Database) -> AuditHead:
    found = db.run(lambda uow: uow.audit.head(), read_only=True)
    return AuditHead(0, GENESIS_HASH) if found is None else AuditHead(*found)


def parse_anchor(text_: str) -> tuple[int, str] | None:
    """``SEQ:HASH`` (as printed by ``vutf audit head``) → ``(seq, hash)``.

    ``0:<genesis hash>`` (the head of an empty log) anchors nothing and gives None.
    """
    match = _ANCHOR.fullmatch(text_.strip()) if len(text_) < 200 else None
    if match is None or int(match.group(1)) > MAX_SEQ:
        raise InvalidInput(
            f"invalid anchor {shorten_for_message(text_)}",
            hint="use SEQ:HASH as printed by `vutf audit head` (HASH is 64 hex digits)",
        )
    seq, row_hash = int(match.group(1)), match.group(2).lower()
    if seq == 0:
        if row_hash != GENESIS_HASH:
            raise InvalidInput("an anchor at seq 0 must carry the genesis hash (64 zeros)")
        return None
    return seq, row_hash


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A chain check: what was walked, the head reached, and the first problem if any.

    ``head`` is ``seq:hash`` of the last row that verified (when the chain is
    intact, the log's head; ``0:<64 zeros>`` for an empty log), the value to
    record and pass back later as ``--anchor``.
    """

    ok: bool
    checked: int
    first_seq: int | None
    last_seq: int | None
    head: str | None
    bad_seq: int | None
    problem: str | None  # edited | missing | reordered | inserted | anchor
    detail: str | None


def verify(
    db: Database, *, since_seq: int | None = None, anchor: tuple[int, str] | None = None
) -> VerifyResult:
    """Recompute the hash chain (the audit repository documents each kind of problem).

    ``anchor`` comes from :func:`parse_anchor`.
    """
    if since_seq is not None:
        _check_seq("--since-seq", since_seq)
    if anchor is not None:
        _check_seq("the anchor's seq", anchor[0])
    parsed_anchor = anchor

    def work(uow: UnitOfWork) -> VerifyResult:
        report = uow.audit.verify_chain(since_seq=since_seq, anchor=parsed_anchor)
        if report.last_seq is not None and report.head_hash is not None:
            reached: str | None = f"{report.last_seq}:{report.head_hash}"
        elif report.ok:
            # Nothing walked (empty log, or --since-seq past the end): the head as it is.
            found = uow.audit.head()
            reached = AuditHead(*found).anchor if found else AuditHead(0, GENESIS_HASH).anchor
        else:
            reached = None
        return VerifyResult(
            ok=report.ok,
            checked=report.checked,
            first_seq=report.first_seq,
            last_seq=report.last_seq,
            head=reached,
            bad_seq=report.bad_seq,
            problem=report.problem,
            detail=report.detail,
        )

    return db.run(work, read_only=True)


def chain_error(report: VerifyResult) -> IntegrityFailure:
    """The error (exit 6) for a failed report."""
    return IntegrityFailure(
        f"audit chain broken at seq {report.bad_seq}: {report.problem} ({report.detail})",
        hint="the log was changed outside vutf; keep this database for investigation",
    )


# -- stats -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditStats:
    dimension: str  # the column name: action, actor, resource_type, status, day
    counts: tuple[tuple[str, int], ...]  # most frequent first

    def rows(self) -> list[dict[str, Any]]:
        return [{self.dimension: key, "count": count} for key, count in self.counts]


def stats_dimension(by: str) -> str:
    """The column a ``--by`` value names (``resource-type`` is ``resource_type``)."""
    dimension = by.strip().lower().replace("-", "_")
    if dimension not in STATS_DIMENSIONS:
        raise InvalidInput(
            f"cannot group by {shorten_for_message(by)}",
            hint="use one of: " + ", ".join(d.replace("_", "-") for d in STATS_DIMENSIONS),
        )
    return dimension


def stats(db: Database, *, by: str, query: AuditQuery | None = None) -> AuditStats:
    """Counts grouped by ``by`` (see :func:`stats_dimension`), within ``query``'s time range."""
    dimension = stats_dimension(by)
    since = None if query is None else query.since
    until = None if query is None else query.until
    counts = db.run(
        lambda uow: uow.audit.stats(by=dimension, since=since, until=until), read_only=True
    )
    return AuditStats(dimension, tuple(counts))


# -- export ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ExportStream:
    """Entries in ascending seq, read lazily from one snapshot.

    ``head_seq`` is the last seq in the snapshot (0 when empty): how far the
    walk goes, for a progress bar that advances by seq.
    """

    entries: Iterator[AuditEntry]
    head_seq: int


def _unavailable(db: Database, exc: SQLAlchemyError) -> VutfError:
    if classify(exc) is ErrorKind.CONNECTION:
        return DatabaseUnavailable(
            f"database unavailable at {db.settings.masked_url}: {describe(exc)}"
        )
    translated = translate_error(exc)
    return translated if translated is not None else DatabaseUnavailable(describe(exc))


def _begin_snapshot(uow: UnitOfWork) -> None:
    if uow.dialect == "postgresql":
        # Must be the transaction's first statement: from here on every batch
        # reads the same snapshot, whatever is appended meanwhile.
        uow.session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


@contextmanager
def _export_snapshot(
    db: Database, query: AuditQuery
) -> Iterator[tuple[UnitOfWork, ResolvedFilters, int]]:
    """The read-only snapshot an export reads: its unit of work, filters and head seq.

    Database errors become vutf errors (a lost connection:
    DatabaseUnavailable).  An export is not retried half-way: what was
    written would be written twice.
    """
    try:
        with db.unit_of_work(read_only=True) as uow:
            _begin_snapshot(uow)
            filters = resolve_filters(uow, query)
            found = uow.audit.head()
            yield uow, filters, 0 if found is None else found[0]
            uow.commit()
    except SQLAlchemyError as exc:
        raise _unavailable(db, exc) from exc


@contextmanager
def open_export(
    db: Database, query: AuditQuery, *, batch_size: int = EXPORT_BATCH
) -> Iterator[ExportStream]:
    """Stream every matching entry, ascending, from one read-only snapshot.

    The transaction stays open until the ``with`` block ends; consume
    ``entries`` inside it.
    """
    if batch_size < 1:
        raise InvalidInput("the batch size must be at least 1")
    with _export_snapshot(db, query) as (uow, filters, head_seq):

        def entries() -> Iterator[AuditEntry]:
            after_seq: int | None = None
            while True:
                batch = _fetch(
                    uow, filters, descending=False, after_seq=after_seq, limit=batch_size
                )
                yield from batch
                if len(batch) < batch_size:
                    return
                after_seq = batch[-1].seq

        yield ExportStream(entries(), head_seq)


JsonLinePart = bytes | AuditEntry | dict[str, Any]
"""What a JSON-lines export hands its writer: finished text (UTF-8 bytes of one
or more lines, each newline-terminated), or one entry to render like ``list``
does (an AuditEntry, or the JSON object of one)."""


@dataclass(frozen=True, slots=True)
class JsonLinesExport:
    """A started ``-o jsonl`` export (see :func:`open_json_lines_export`)."""

    uow: UnitOfWork
    filters: ResolvedFilters
    head_seq: int
    batch_size: int

    def write(self, emit: Callable[[JsonLinePart], None], advance: Callable[[int], None]) -> int:
        """Send every matching row to ``emit``, in seq order; return how many.

        ``advance(seqs)`` is called as the walk goes forward (for a progress bar).
        """
        if self.uow.dialect == "postgresql":
            return _copy_json_lines(self, emit, advance)
        return _fetch_json_lines(self, emit, advance)


# Rows per statement of a JSON-lines export; the text of a batch is held in
# memory (under 1 KiB a row) until it is written.
POSTGRES_COPY_BATCH: Final = 10_000
SQLITE_LINES_BATCH: Final = 5000


@contextmanager
def open_json_lines_export(
    db: Database, query: AuditQuery, *, batch_size: int | None = None
) -> Iterator[JsonLinesExport]:
    """:func:`open_export` for ``-o jsonl``, with the rows rendered by the database.

    The text is byte for byte what rendering the same entries in Python gives
    (``vutf_cli.db.audit_json`` says how, and which rows it leaves to Python).
    Call ``write`` inside the ``with`` block.
    """
    if batch_size is not None and batch_size < 1:
        raise InvalidInput("the batch size must be at least 1")
    with _export_snapshot(db, query) as (uow, filters, head_seq):
        default = POSTGRES_COPY_BATCH if uow.dialect == "postgresql" else SQLITE_LINES_BATCH
        yield JsonLinesExport(uow, filters, head_seq, batch_size or default)


def _copy_json_lines(
    export: JsonLinesExport, emit: Callable[[JsonLinePart], None], advance: Callable[[int], None]
) -> int:
    conditions = filter_conditions(export.filters, "postgresql")
    connection = export.uow.session.connection()
    count = 0
    after_seq = 0
    while True:
        statement = postgres_lines_statement(
            conditions, after_seq=after_seq, limit=export.batch_size
        )
        # The rows are finished while the server sends the next ones, but
        # written only once the COPY is over: a slow reader (| less) must not
        # hold a statement open (statement timeout), nor look like a stalled
        # server to copy_rows.
        finished: list[JsonLinePart] = []
        rows, last = copy_rows(connection, statement, _finishing_into(finished))
        _emit_joined(finished, emit)
        count += rows
        if last is None or rows < export.batch_size:
            advance(export.head_seq - after_seq)
            return count
        reached = seq_of_line(last)
        advance(reached - after_seq)
        after_seq = reached


def _finishing_into(finished: list[JsonLinePart]) -> Callable[[bytes], None]:
    def finish(line: bytes) -> None:
        finished.append(finish_postgres_line(line))

    return finish


def _emit_joined(parts: list[JsonLinePart], emit: Callable[[JsonLinePart], None]) -> None:
    """Emit ``parts`` in order, each run of finished text as one bytes."""
    run: list[bytes] = []
    for part in parts:
        if type(part) is bytes:
            run.append(part)
            continue
        if run:
            emit(b"".join(run))
            run = []
        emit(part)
    if run:
        emit(b"".join(run))


def _fetch_json_lines(
    export: JsonLinesExport, emit: Callable[[JsonLinePart], None], advance: Callable[[int], None]
) -> int:
    uow = export.uow
    conditions = filter_conditions(export.filters, uow.dialect)
    line = sqlite_line_column()
    count = 0
    after_seq = 0
    while True:
        statement = (
            select(AUDIT.c.seq, line)
            .where(*conditions, AUDIT.c.seq > after_seq)
            .order_by(AUDIT.c.seq)
            .limit(export.batch_size)
        )
        rows = _sqlite_lines(uow, statement)
        if rows is None or _any_undecodable(rows):
            # SQLite's json() refuses a malformed value, or a text is not UTF-8
            # (the file was edited by hand): this batch goes the Python way,
            # which reports it as `audit list` does.
            entries = _fetch(
                uow, export.filters, descending=False, after_seq=after_seq, limit=export.batch_size
            )
            rows = [(entry.seq, None) for entry in entries]
            unrendered = {entry.seq: entry for entry in entries}
        else:
            unrendered = _entries_of_unrendered(uow, rows)
        if rows:
            _emit_sqlite_lines(rows, unrendered, emit)
            count += len(rows)
        if len(rows) < export.batch_size:
            advance(export.head_seq - after_seq)
            return count
        reached = rows[-1][0]
        advance(reached - after_seq)
        after_seq = reached


def _sqlite_lines(uow: UnitOfWork, statement: Select[Any]) -> list[tuple[int, bytes | None]] | None:
    """The ``(seq, line)`` rows of ``statement``, or None when SQLite could not render them."""
    connection = uow.session.connection()
    raw: Any = connection.connection.dbapi_connection
    # Lines as UTF-8 bytes, as they are written: no decoding and re-encoding.
    raw.text_factory = bytes
    try:
        result = connection.execute(statement)
        # Straight from the driver's cursor: Row objects would cost more than
        # the rendering saves.
        rows: list[tuple[int, bytes | None]] = list(result.cursor.fetchall())
        result.close()
    except OperationalError:
        return None
    finally:
        raw.text_factory = str
    return rows


def _any_undecodable(rows: list[tuple[int, bytes | None]]) -> bool:
    """Whether a line is not UTF-8 (SQLite stores whatever bytes it is given)."""
    text = b"".join([line for _seq, line in rows if line is not None])
    if text.isascii():  # nearly always: a C loop, no decoding
        return False
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _emit_sqlite_lines(
    rows: list[tuple[int, bytes | None]],
    unrendered: dict[int, AuditEntry],
    emit: Callable[[JsonLinePart], None],
) -> None:
    lines = [line for _seq, line in rows]
    if None not in lines:
        lines.append(b"")  # the last newline
        text = b"\n".join(cast(list[bytes], lines))
        if b"\\" not in text:
            # The common case: the whole batch as one text.
            emit(text)
            return
    for seq, line in rows:
        if line is None:
            emit(unrendered[seq])
        elif b"\\" in line:
            # An escape sequence is kept as stored by json(); parsed, the line
            # gives the values Python's reading of the stored text gives.
            emit(cast(dict[str, Any], json.loads(line)))
        else:
            emit(line + b"\n")


def _entries_of_unrendered(
    uow: UnitOfWork, rows: list[tuple[int, bytes | None]]
) -> dict[int, AuditEntry]:
    seqs = [seq for seq, line in rows if line is None]
    if not seqs:
        return {}
    found = uow.session.execute(select(AUDIT).where(AUDIT.c.seq.in_(seqs)))
    return {entry.seq: entry for entry in map(entry_from_row, found)}


# -- follow ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Following:
    """A started follow: entries after ``after_seq`` are yielded by ``entries`` as they come."""

    after_seq: int
    entries: Iterator[AuditEntry]


def follow(
    db: Database,
    query: AuditQuery,
    *,
    since_seq: int | None = None,
    interval: float = 1.0,
    max_events: int | None = None,
    timeout: float | None = None,
    on_outage: Callable[[VutfError], None] | None = None,
    on_recovery: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Following:
    """Follow new matching entries as they are appended, like ``tail -f``.

    The starting point is fixed before this returns: after the current head,
    or just before ``since_seq`` to replay from there.  ``entries`` then polls
    every ``interval`` seconds.  While the database is unreachable,
    ``on_outage`` is called once and polling goes on with a growing pause (up
    to 30 s; the circuit breaker makes each try fail fast meanwhile);
    ``on_recovery`` is called when a poll succeeds again.  Rows are written
    in seq order under the append lock, so "seq greater than the last one
    seen" never misses a row.  Ends after ``max_events`` entries or
    ``timeout`` seconds, if given.
    """
    # Written so that NaN fails every check (it compares false with everything).
    if not MIN_FOLLOW_INTERVAL <= interval <= MAX_FOLLOW_INTERVAL:
        raise InvalidInput(
            f"--interval must be between {MIN_FOLLOW_INTERVAL} and "
            f"{MAX_FOLLOW_INTERVAL:.0f} seconds (got {interval})"
        )
    if max_events is not None and max_events < 1:
        raise InvalidInput("--max-events must be at least 1")
    if timeout is not None and not (math.isfinite(timeout) and 0 <= timeout <= MAX_FOLLOW_TIMEOUT):
        raise InvalidInput(
            f"--timeout must be between 0 and {MAX_FOLLOW_TIMEOUT:.0f} seconds (got {timeout})"
        )
    if since_seq is not None:
        _check_seq("--since-seq", since_seq)
    deadline = None if timeout is None else clock() + timeout

    def start(uow: UnitOfWork) -> tuple[ResolvedFilters, int]:
        filters = resolve_filters(uow, query)
        if since_seq is not None:
            return filters, since_seq - 1
        found = uow.audit.head()
        return filters, 0 if found is None else found[0]

    filters, after_seq = db.run(start, read_only=True)

    def poll(last_seq: int) -> list[AuditEntry]:
        return db.run(
            lambda uow: _fetch(
                uow, filters, descending=False, after_seq=last_seq, limit=FOLLOW_BATCH
            ),
            read_only=True,
        )

    def entries() -> Iterator[AuditEntry]:
        last_seq = after_seq
        emitted = 0
        outage = False
        pause = interval
        while True:
            batch: list[AuditEntry] | None
            try:
                batch = poll(last_seq)
            except DatabaseUnavailable as exc:
                if not outage and on_outage is not None:
                    on_outage(exc)
                outage = True
                pause = min(pause * 2, MAX_OUTAGE_BACKOFF)
                batch = None
            else:
                if outage and on_recovery is not None:
                    on_recovery()
                outage = False
                pause = interval
            for entry in batch or ():
                last_seq = entry.seq
                yield entry
                emitted += 1
                if max_events is not None and emitted >= max_events:
                    return
            if batch is not None and len(batch) == FOLLOW_BATCH:
                continue  # more are waiting: no pause
            wait = pause
            if deadline is not None:
                wait = min(wait, deadline - clock())
                if wait <= 0:
                    return
            sleep(wait)

    return Following(after_seq, entries())
