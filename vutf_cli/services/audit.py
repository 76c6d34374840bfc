"""The audit log's read use cases behind `vutf audit`: list, show, head, stats.

:func:`build_query` validates what the command line gave (status, time specs
such as ``2h`` or ``yesterday``, action globs) into an :class:`AuditQuery`;
inside a transaction :func:`resolve_filters` turns ``--user`` (username,
email or id, deleted users included) into a user id.  Every listing runs the
one statement of ``db.audit_sql.page_statement`` (filters, keyset bound on
``seq``, ``ORDER BY seq``, ``LIMIT``).

Cursors are opaque to the user: the seq of the last row shown and the
direction, base64url-encoded.  New rows get larger seqs, so a newest-first
walk never repeats or skips a row while others append.  :func:`stream_entries`
walks the pages (every entry, or ``--limit`` of them; sizes in
:mod:`vutf_cli.services.paging`).

``head`` of an empty log is ``0`` with the genesis hash (64 zeros), so
``$(vutf audit head)`` always yields something to record; as an anchor it
checks nothing.  Export, verify and follow are in ``services.audit_export``,
``services.audit_verify`` and ``services.audit_follow``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row

from vutf_cli.db.audit_sql import STATS_DIMENSIONS, page_statement
from vutf_cli.db.audit_sql import AuditFilters as ResolvedFilters
from vutf_cli.db.database import Database
from vutf_cli.db.models import AUDIT_STATUSES
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.validation import parse_time_spec, shorten_for_message
from vutf_cli.domain.views import AuditEntry
from vutf_cli.errors import InvalidInput, NotFound
from vutf_cli.security.audit_chain import GENESIS_HASH
from vutf_cli.security.audit_fields import ENTRY_FIELDS
from vutf_cli.services.paging import DEFAULT_PAGE_SIZE, Listing, check_limit

__all__ = [
    "AUDIT_STATUSES",
    "MAX_SEQ",
    "STATS_DIMENSIONS",
    "AuditHead",
    "AuditPage",
    "AuditQuery",
    "AuditStats",
    "ResolvedFilters",
    "build_query",
    "check_seq",
    "decode_cursor",
    "encode_cursor",
    "entry_from_row",
    "fetch_entries",
    "head",
    "history_user_id",
    "list_entries",
    "page_statement",
    "parse_seq_or_id",
    "resolve_filters",
    "show",
    "stats",
    "stats_dimension",
    "stream_entries",
]

# seq is a signed 64-bit integer on both dialects: a larger number is no seq
# (and SQLite's driver cannot even send it).
MAX_SEQ: Final = 2**63 - 1

_ACTION_FILTER = re.compile(r"[a-z0-9_.*?]+")
_CURSOR_PREFIX: Final = "vutf-audit-1"
# Longest text filter each column can match (its String length).
_FILTER_MAX_LENGTHS: Final = {
    "--by-actor": 255,
    "--user": 255,  # a username (100), an email (254) or an id (36)
    "--action": 100,
    "--resource-type": 50,
    "--resource-id": 255,
}
_SEQ_DIGITS = re.compile(r"[0-9]+")
_AMBIGUOUS_SHOWN: Final = 5  # ids named when --user was held by several users


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
    since_seq: int | None = None


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


def check_seq(option: str, seq: int) -> int:
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
    since_seq: int | None = None,
    now: datetime | None = None,
) -> AuditQuery:
    """Validate command-line filters into an :class:`AuditQuery`.

    Relative times count back from ``now`` (default: the clock); ``since`` is
    inclusive, ``until`` exclusive.
    """
    now = now or utcnow()
    query = AuditQuery(
        actor=_filter_text("--by-actor", actor),
        user=_filter_text("--user", user),
        action=_parse_action(action),
        resource_type=_filter_text("--resource-type", resource_type),
        resource_id=_filter_text("--resource-id", resource_id),
        status=parse_status(status),
        since=_parse_time("--since", since, now),
        until=_parse_time("--until", until, now),
        since_seq=None if since_seq is None else check_seq("--since-seq", since_seq),
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

    A user row (live or soft-deleted) wins.  Without one, a user id is taken
    as it is, and a username or email is looked up in the log itself
    (:func:`history_user_id`): the audit log outlives purged users.
    """
    user_id: uuid.UUID | None = None
    if query.user is not None:
        user = uow.users.get_by_identifier(query.user, include_deleted=True)
        if user is not None:
            user_id = user.id
        else:
            user_id = _as_uuid(query.user) or history_user_id(uow, query.user)
    return ResolvedFilters(
        actor=query.actor,
        user_id=user_id,
        action=query.action,
        resource_type=query.resource_type,
        resource_id=query.resource_id,
        status=query.status,
        since=query.since,
        until=query.until,
        since_seq=query.since_seq,
    )


def history_user_id(uow: UnitOfWork, name: str) -> uuid.UUID:
    """The id the audit history shows holding the username or email ``name`` (no user row).

    NotFound (exit 3) when no successful ``user.create``/``update``/``delete``
    row names it.  When the name was held by several users over time (one
    hard-deleted, the name registered again, deleted again), mixing their
    histories would attribute one person's acts to another: that is
    InvalidInput (exit 2) listing the ids, to be given instead.
    """
    ids = uow.audit.user_ids_named(name)
    shown = shorten_for_message(name)
    if not ids:
        raise NotFound(
            f"user {shown} not found, now or in the audit history",
            hint="give a username, an email or a user id",
        )
    if len(ids) > 1:
        listed = ", ".join(str(user_id) for user_id in ids[:_AMBIGUOUS_SHOWN])
        more = f" and {len(ids) - _AMBIGUOUS_SHOWN} more" if len(ids) > _AMBIGUOUS_SHOWN else ""
        raise InvalidInput(
            f"user {shown} was {len(ids)} different users over time: {listed}{more}",
            hint="give one of the user ids with --user",
        )
    return ids[0]


def entry_from_row(row: Row[Any]) -> AuditEntry:
    """An AuditEntry from a Core row of ``audit_log`` (no ORM identity map involved)."""
    values = row._mapping
    return AuditEntry(**{name: values[name] for name in ENTRY_FIELDS})


def fetch_entries(
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
    limit: int = DEFAULT_PAGE_SIZE,
) -> AuditPage:
    """One page of entries, newest first unless ``descending`` is False.

    ``after_seq`` is where the previous page ended (:func:`decode_cursor` of
    its ``next_cursor``).
    """
    check_limit(limit)
    if after_seq is not None and not 0 <= after_seq <= MAX_SEQ:
        raise InvalidInput("invalid cursor: its seq is out of range")

    def work(uow: UnitOfWork) -> AuditPage:
        filters = resolve_filters(uow, query)
        rows = fetch_entries(
            uow, filters, descending=descending, after_seq=after_seq, limit=limit + 1
        )
        if len(rows) > limit:
            rows = rows[:limit]
            return AuditPage(tuple(rows), encode_cursor(rows[-1].seq, descending=descending))
        return AuditPage(tuple(rows), None)

    return db.run(work, read_only=True)


def stream_entries(
    db: Database,
    query: AuditQuery,
    *,
    descending: bool = True,
    cursor: str | None = None,
    limit: int | None = None,
) -> Listing[AuditEntry]:
    """Every entry after ``cursor`` (or the first ``limit``), one page per transaction.

    A cursor of the other order is InvalidInput (exit 2) before anything is read.
    """

    def fetch(after: str | None, size: int) -> tuple[tuple[AuditEntry, ...], str | None]:
        after_seq = None if after is None else decode_cursor(after, descending=descending)
        page = list_entries(db, query, descending=descending, after_seq=after_seq, limit=size)
        return page.entries, page.next_cursor

    return Listing(fetch, cursor=cursor, limit=limit)


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
