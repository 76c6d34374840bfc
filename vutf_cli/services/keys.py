"""API keys behind `vutf keys`: issue, list, show, revoke, rotate, extend, re-scope, prune, verify.

Every function takes a :class:`~vutf_cli.services.runtime.Runtime` and
primitives (strings as typed on the command line), does its work in one transaction and
returns frozen views built inside that transaction.  Mutations go through
:func:`~vutf_cli.services.audit_trail.mutate`: the change and its ``success``
audit row commit together, and a refusal (not found, conflict, denied) leaves
a ``failure`` row.  Invalid input (exit 2) is refused before the database is
touched and is not audited.

Decisions (the command reference in the README repeats them):

Scopes
    ``--scope`` may be repeated and each value may hold several scopes
    separated by commas (``--scope read,write --scope targets:*``).  Unknown
    scopes are refused (exit 2).  ``create`` defaults to :data:`DEFAULT_SCOPES`
    (``read``, the least privilege that still makes a useful key);
    ``set-scopes`` has no default: at least one scope must be named.

Expiry
    A new key expires after :data:`DEFAULT_EXPIRY` (90 days) unless
    ``--expires-in``, ``--expires-at`` or ``--no-expiry`` says otherwise (the
    three are mutually exclusive, exit 2).  A forgotten key that never
    expires is the classic leaked credential; making "forever" an explicit,
    audited choice costs a script one flag, and ``keys list
    --expiring-within`` shows what is about to lapse.  An expiry in the past
    is refused (exit 2).  ``--expires-at`` takes an ISO 8601 date or
    date-time (no zone means UTC).

Plaintext key
    It exists only in the :class:`IssuedKey` returned by :func:`create_key`
    and :func:`rotate_key`; it is never stored, logged or audited (the table
    holds its 12-character prefix and its digest).  A full key is never
    accepted as a KEY reference on the command line either (it would land in
    shell history): KEY is the key id or its prefix.

Rotation
    ``rotate`` issues a new key with the same owner, name, scopes and
    description.  Its expiry is the old key's lifetime counted from now (no
    expiry if the old key had none) unless an expiry option is given.  The
    old key keeps working for ``--grace`` (default: none, it stops at once;
    rotation is also the answer to a leak) but never beyond its own expiry,
    and then counts as expired.  Names are unique per owner among live keys,
    so the old key is renamed ``<name> (rotated <UTC timestamp>)`` (truncated
    to fit 100 characters).  Only an active key can be rotated, and a key
    that was already rotated out is refused: rotate its replacement.

Revocation and pruning
    ``revoke`` resolves every KEY first: one unknown reference and nothing is
    revoked (exit 3).  Already revoked keys are reported as unchanged.
    ``prune-expired`` soft-deletes keys that expired or were revoked more than
    ``--older-than`` (default :data:`DEFAULT_PRUNE_AGE`, 30 days) ago.  Both
    write one audit row per key they change (so ``vutf audit`` finds a key's
    history by its id), all in the command's single transaction; a key that
    was not changed gets no row.  ``set-scopes`` to the same scopes changes
    nothing and writes nothing.

Verification
    :func:`verify_key` checks the key's format and checksum before it touches
    the database at all (no engine is even built for a malformed key).
    Without ``record_usage`` it is a read-only transaction and writes nothing,
    not even an audit row.  With ``record_usage`` it is a mutation: it counts
    the use (``usage_count``, ``last_used_at``) and appends an ``api_key.use``
    row, and a refused key leaves an ``api_key.use`` failure row.  The reason
    for a refusal is one line and never contains the key.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, and_, or_

from vutf_cli.db.models import ApiKey, User
from vutf_cli.db.repositories.api_keys import NAME_MAX_LENGTH
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain import validation
from vutf_cli.domain.views import ApiKeyView, api_key_state
from vutf_cli.errors import Conflict, InvalidInput
from vutf_cli.security import api_keys as key_format
from vutf_cli.services.audit_trail import REFUSALS, mutate, record_failure
from vutf_cli.services.runtime import Runtime

__all__ = [
    "DEFAULT_EXPIRY",
    "DEFAULT_LIST_LIMIT",
    "DEFAULT_PRUNE_AGE",
    "DEFAULT_SCOPES",
    "LIST_STATES",
    "MAX_LIST_LIMIT",
    "ExpiryChange",
    "IssuedKey",
    "KeyPage",
    "PrunePlan",
    "PruneResult",
    "RevokeResult",
    "ScopeChange",
    "Verification",
    "create_key",
    "extend_key",
    "list_keys",
    "parse_scopes",
    "preview_prune",
    "preview_revoke",
    "prune_expired",
    "revoke_keys",
    "rotate_key",
    "set_scopes",
    "show_key",
    "verify_key",
]

T = TypeVar("T")

DEFAULT_SCOPES: Final = ("read",)
DEFAULT_EXPIRY: Final = timedelta(days=90)
DEFAULT_PRUNE_AGE: Final = timedelta(days=30)
DEFAULT_LIST_LIMIT: Final = 50
MAX_LIST_LIMIT: Final = 1000
# "active" (the default), "expired", "revoked", or "all" (every key, deleted ones too).
LIST_STATES: Final = ("active", "expired", "revoked", "all")

RESOURCE_TYPE: Final = "api_key"
_ROTATED_RE: Final = re.compile(r" \(rotated \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\)$")


# -- views ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly issued key and its plaintext, which is shown once and never stored.

    ``replaced`` is the key a rotation replaced, as it is after the rotation.
    """

    api_key: ApiKeyView
    plaintext: str = field(repr=False)
    replaced: ApiKeyView | None = None


@dataclass(frozen=True, slots=True)
class KeyPage:
    """One page of a listing; pass ``next_cursor`` back for the next (None: last page)."""

    items: tuple[ApiKeyView, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RevokeResult:
    revoked: tuple[ApiKeyView, ...]
    unchanged: tuple[ApiKeyView, ...]  # were revoked already


@dataclass(frozen=True, slots=True)
class ExpiryChange:
    api_key: ApiKeyView
    previous_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScopeChange:
    api_key: ApiKeyView
    previous_scopes: tuple[str, ...]
    changed: bool


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """The keys a prune would soft-delete now: ended (expired or revoked) before ``cutoff``."""

    candidates: tuple[ApiKeyView, ...]
    cutoff: datetime


@dataclass(frozen=True, slots=True)
class PruneResult:
    pruned: int
    cutoff: datetime
    key_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class Verification:
    """A key that passed verification: who owns it and what it may do."""

    valid: bool
    key_id: uuid.UUID
    key_prefix: str
    name: str
    user_id: uuid.UUID
    username: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    required_scope: str | None
    usage_count: int
    last_used_at: datetime | None
    usage_recorded: bool


# -- parsing what the command line gave ---------------------------------------------
def parse_scopes(values: Iterable[str], *, default: Sequence[str] | None = None) -> dict[str, bool]:
    """``{scope: True}`` from repeated and/or comma-separated values; InvalidInput if unknown.

    With no scope at all, ``default`` is used, or InvalidInput when there is none.
    """
    named = [part.strip() for value in values for part in value.split(",")]
    named = [part for part in named if part]
    if not named:
        if default is None:
            raise InvalidInput("no scope given", hint="name at least one with --scope")
        named = list(default)
    return validation.normalize_scopes(named)


def _parse_optional_duration(text: str | None) -> timedelta | None:
    return None if text is None else validation.parse_duration(text)


def _requested_expiry(
    *,
    expires_in: str | None,
    expires_at: str | None,
    no_expiry: bool,
    now: datetime,
) -> tuple[bool, datetime | None]:
    """(whether an expiry was requested, the expiry); InvalidInput for a past or doubled one."""
    given = [
        flag
        for flag, present in (
            ("--expires-in", expires_in is not None),
            ("--expires-at", expires_at is not None),
            ("--no-expiry", no_expiry),
        )
        if present
    ]
    if len(given) > 1:
        raise InvalidInput(f"{' and '.join(given)} are mutually exclusive; give one of them")
    if no_expiry:
        return True, None
    if expires_in is not None:
        return True, now + validation.parse_duration(expires_in)
    if expires_at is not None:
        moment = validation.parse_time_spec(expires_at, now)
        if moment <= now:
            raise InvalidInput(
                f"expiry {moment.isoformat()} is not in the future",
                hint="give a future ISO 8601 date-time, or a duration with --expires-in",
            )
        return True, moment
    return False, None


def _check_reference(ref: str) -> str:
    """A KEY reference as typed; a whole key is refused (it would sit in shell history)."""
    cleaned = ref.strip()
    if (
        cleaned.startswith(key_format.KEY_PREFIX)
        and len(cleaned) > key_format.PREFIX_DISPLAY_LENGTH
    ):
        raise InvalidInput(
            "give the key id or its prefix (at most "
            f"{key_format.PREFIX_DISPLAY_LENGTH} characters), never the key itself",
            hint="to check a key, pipe it into `vutf keys verify`",
        )
    return cleaned


# -- helpers inside a unit of work -----------------------------------------------------
def _view(key: ApiKey, now: datetime) -> ApiKeyView:
    return ApiKeyView.from_row(key, username=key.user.username, now=now)


def _lookup_user(uow: UnitOfWork, ident: str, *, include_deleted: bool = False) -> User:
    return uow.users.require(ident, include_deleted=include_deleted)


def _resolve_all(uow: UnitOfWork, refs: Sequence[str]) -> list[ApiKey]:
    """Every referenced live key, each once, in the order given; NotFound for any unknown."""
    keys: list[ApiKey] = []
    seen: set[uuid.UUID] = set()
    for ref in refs:
        key = uow.keys.resolve(ref)
        if key.id not in seen:
            seen.add(key.id)
            keys.append(key)
    return keys


def _target_keys(uow: UnitOfWork, refs: Sequence[str], user: str | None) -> list[ApiKey]:
    if user is not None:
        return uow.keys.list_for_user(_lookup_user(uow, user).id)
    return _resolve_all(uow, refs)


def _mutation(
    rt: Runtime,
    fn: Callable[[UnitOfWork], T],
    *,
    action: str,
    resource_id: str | None = None,
) -> T:
    return mutate(rt.db, fn, action=action, resource_type=RESOURCE_TYPE, resource_id=resource_id)


def _rotated_name(name: str, now: datetime) -> str:
    suffix = f" (rotated {now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')})"
    return name[: NAME_MAX_LENGTH - len(suffix)].rstrip() + suffix


# -- issuing -------------------------------------------------------------------------
def create_key(
    rt: Runtime,
    *,
    user: str,
    name: str,
    scopes: Sequence[str] = (),
    expires_in: str | None = None,
    expires_at: str | None = None,
    no_expiry: bool = False,
    description: str | None = None,
) -> IssuedKey:
    """Issue a key named ``name`` for ``user`` (username, email or id)."""
    permissions = parse_scopes(scopes, default=DEFAULT_SCOPES)
    description = validation.validate_description(description)
    # Checked now so bad input fails before the database; re-checked in the transaction.
    _requested_expiry(
        expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=utcnow()
    )

    def issue(uow: UnitOfWork) -> IssuedKey:
        now = utcnow()
        requested, expiry = _requested_expiry(
            expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=now
        )
        owner = _lookup_user(uow, user)
        key, plaintext = uow.keys.create_key(
            user=owner,
            name=name,
            permissions=permissions,
            expires_at=expiry if requested else now + DEFAULT_EXPIRY,
            description=description,
            now=now,
        )
        uow.audit.append(
            action="api_key.create",
            resource_type=RESOURCE_TYPE,
            resource_id=str(key.id),
            user_id=owner.id,
            changes={
                "name": key.name,
                "key_prefix": key.key_prefix,
                "scopes": sorted(key.permissions),
                "expires_at": key.expires_at,
                "description": key.description,
            },
        )
        return IssuedKey(api_key=_view(key, now), plaintext=plaintext)

    return _mutation(rt, issue, action="api_key.create")


def rotate_key(
    rt: Runtime,
    ref: str,
    *,
    grace: str | None = None,
    expires_in: str | None = None,
    expires_at: str | None = None,
    no_expiry: bool = False,
) -> IssuedKey:
    """Replace an active key by a new one; the old one works for ``grace`` more."""
    ref = _check_reference(ref)
    grace_period = _parse_optional_duration(grace)
    _requested_expiry(
        expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=utcnow()
    )

    def rotate(uow: UnitOfWork) -> IssuedKey:
        now = utcnow()
        requested, expiry = _requested_expiry(
            expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=now
        )
        old = uow.keys.resolve(ref)
        state = api_key_state(old, now)
        if state != "active":
            raise Conflict(
                f"API key '{old.name}' ({old.key_prefix}) is {state}; only an active key "
                "can be rotated",
                hint="issue a new key with `vutf keys create`",
            )
        if _ROTATED_RE.search(old.name):
            raise Conflict(
                f"API key '{old.name}' ({old.key_prefix}) was already rotated out",
                hint="rotate its replacement instead",
            )
        if not requested and old.expires_at is not None:
            expiry = now + (old.expires_at - old.created_at)
        old_end = now + grace_period if grace_period is not None else now
        if old.expires_at is not None:
            old_end = min(old_end, old.expires_at)
        previous_expiry, original_name = old.expires_at, old.name
        # Rename first: the new key takes the name, unique per owner among live keys.
        uow.keys.update(old, name=_rotated_name(original_name, now), expires_at=old_end)
        new, plaintext = uow.keys.create_key(
            user=old.user,
            name=original_name,
            permissions=dict(old.permissions),
            expires_at=expiry,
            description=old.description,
            now=now,
        )
        uow.audit.append(
            action="api_key.rotate",
            resource_type=RESOURCE_TYPE,
            resource_id=str(old.id),
            user_id=old.user_id,
            changes={
                "name": {"old": original_name, "new": old.name},
                "expires_at": {"old": previous_expiry, "new": old.expires_at},
                "replaced_by": {
                    "id": new.id,
                    "key_prefix": new.key_prefix,
                    "name": new.name,
                    "scopes": sorted(new.permissions),
                    "expires_at": new.expires_at,
                },
            },
        )
        return IssuedKey(api_key=_view(new, now), plaintext=plaintext, replaced=_view(old, now))

    return _mutation(rt, rotate, action="api_key.rotate", resource_id=ref)


# -- reading -------------------------------------------------------------------------
def list_keys(
    rt: Runtime,
    *,
    user: str | None = None,
    state: str = "active",
    expiring_within: str | None = None,
    unused_for: str | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
    cursor: str | None = None,
) -> KeyPage:
    """Keys in ``state``, oldest first, one keyset page at a time.

    ``expiring_within``: expiring after now and within that duration;
    ``unused_for``: last used that long ago, or never used and created that
    long ago.  Filters combine with AND.
    """
    if state not in LIST_STATES:
        raise InvalidInput(
            f"unknown key state {validation.shorten_for_message(state)}; "
            f"use one of {', '.join(LIST_STATES)}"
        )
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT} (got {limit})")
    expiring = _parse_optional_duration(expiring_within)
    unused = _parse_optional_duration(unused_for)

    def read(uow: UnitOfWork) -> KeyPage:
        now = utcnow()
        where: list[ColumnElement[bool]] = []
        if state != "all":
            where.append(uow.keys.state_condition(state, now))
        if expiring is not None:
            where.append(and_(ApiKey.expires_at > now, ApiKey.expires_at <= now + expiring))
        if unused is not None:
            cutoff = now - unused
            where.append(
                or_(
                    ApiKey.last_used_at <= cutoff,
                    and_(ApiKey.last_used_at.is_(None), ApiKey.created_at <= cutoff),
                )
            )
        filters: dict[str, Any] = {}
        if user is not None:
            filters["user_id"] = _lookup_user(uow, user, include_deleted=state == "all").id
        page = uow.keys.keyset(
            filters=filters,
            order_by="created_at",
            cursor=cursor,
            limit=limit,
            include_deleted=state == "all",
            load=["user"],
            where=where,
        )
        return KeyPage(
            items=tuple(_view(key, now) for key in page.items), next_cursor=page.next_cursor
        )

    return rt.db.run(read, read_only=True)


def show_key(rt: Runtime, ref: str) -> ApiKeyView:
    """One key by id or prefix, deleted (pruned) keys included."""
    ref = _check_reference(ref)

    def read(uow: UnitOfWork) -> ApiKeyView:
        return _view(uow.keys.resolve(ref, include_deleted=True), utcnow())

    return rt.db.run(read, read_only=True)


# -- revoking ------------------------------------------------------------------------
def _check_revoke_targets(refs: Sequence[str], user: str | None) -> list[str]:
    if user is None and not refs:
        raise InvalidInput("name at least one KEY, or give --user USER --all")
    if user is not None and refs:
        raise InvalidInput("give either KEY references or --user USER --all, not both")
    return [_check_reference(ref) for ref in refs]


def preview_revoke(
    rt: Runtime, refs: Sequence[str] = (), *, user: str | None = None
) -> RevokeResult:
    """What :func:`revoke_keys` would do, without doing it (to confirm first).

    An unknown reference is a refusal of the revocation and is audited as such.
    """
    checked = _check_revoke_targets(refs, user)

    def read(uow: UnitOfWork) -> RevokeResult:
        now = utcnow()
        keys = _target_keys(uow, checked, user)
        return RevokeResult(
            revoked=tuple(_view(k, now) for k in keys if k.revoked_at is None),
            unchanged=tuple(_view(k, now) for k in keys if k.revoked_at is not None),
        )

    try:
        return rt.db.run(read, read_only=True)
    except REFUSALS as exc:
        record_failure(
            rt.db,
            action="api_key.revoke",
            resource_type=RESOURCE_TYPE,
            resource_id=_failure_resource(checked, user),
            error=exc,
        )
        raise


def _failure_resource(refs: Sequence[str], user: str | None) -> str | None:
    if user is not None:
        return None
    return refs[0] if len(refs) == 1 else None


def revoke_keys(rt: Runtime, refs: Sequence[str] = (), *, user: str | None = None) -> RevokeResult:
    """Revoke every referenced key (or every key of ``user``), all or nothing."""
    checked = _check_revoke_targets(refs, user)

    def revoke(uow: UnitOfWork) -> RevokeResult:
        now = utcnow()
        keys = _target_keys(uow, checked, user)
        revoked: list[ApiKeyView] = []
        unchanged: list[ApiKeyView] = []
        for key in keys:
            if not uow.keys.revoke(key, now=now):
                unchanged.append(_view(key, now))
                continue
            uow.audit.append(
                action="api_key.revoke",
                resource_type=RESOURCE_TYPE,
                resource_id=str(key.id),
                user_id=key.user_id,
                changes={"name": key.name, "key_prefix": key.key_prefix, "revoked_at": now},
            )
            revoked.append(_view(key, now))
        return RevokeResult(revoked=tuple(revoked), unchanged=tuple(unchanged))

    return _mutation(
        rt, revoke, action="api_key.revoke", resource_id=_failure_resource(checked, user)
    )


# -- changing ------------------------------------------------------------------------
def extend_key(
    rt: Runtime,
    ref: str,
    *,
    expires_in: str | None = None,
    expires_at: str | None = None,
    no_expiry: bool = False,
) -> ExpiryChange:
    """Set a key's expiry to ``now + expires_in``, to ``expires_at``, or to never."""
    ref = _check_reference(ref)
    requested, _ = _requested_expiry(
        expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=utcnow()
    )
    if not requested:
        raise InvalidInput("give the new expiry: --expires-in, --expires-at or --no-expiry")

    def extend(uow: UnitOfWork) -> ExpiryChange:
        now = utcnow()
        _, expiry = _requested_expiry(
            expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=now
        )
        key = uow.keys.resolve(ref)
        previous = key.expires_at
        uow.keys.set_expiry(key, expiry, now=now)
        uow.audit.append(
            action="api_key.extend",
            resource_type=RESOURCE_TYPE,
            resource_id=str(key.id),
            user_id=key.user_id,
            changes={"expires_at": {"old": previous, "new": key.expires_at}},
        )
        return ExpiryChange(api_key=_view(key, now), previous_expires_at=previous)

    return _mutation(rt, extend, action="api_key.extend", resource_id=ref)


def set_scopes(rt: Runtime, ref: str, scopes: Sequence[str]) -> ScopeChange:
    """Replace a key's scopes; the same scopes again change (and audit) nothing."""
    ref = _check_reference(ref)
    permissions = parse_scopes(scopes)

    def change(uow: UnitOfWork) -> ScopeChange:
        now = utcnow()
        key = uow.keys.resolve(ref)
        previous = tuple(sorted(scope for scope, granted in key.permissions.items() if granted))
        version = key.version
        uow.keys.update_permissions(key, permissions)
        changed = key.version != version
        if changed:
            uow.audit.append(
                action="api_key.set_scopes",
                resource_type=RESOURCE_TYPE,
                resource_id=str(key.id),
                user_id=key.user_id,
                changes={"scopes": {"old": list(previous), "new": sorted(key.permissions)}},
            )
        return ScopeChange(api_key=_view(key, now), previous_scopes=previous, changed=changed)

    return _mutation(rt, change, action="api_key.set_scopes", resource_id=ref)


# -- pruning -------------------------------------------------------------------------
def _prune_age(older_than: str | None) -> timedelta:
    return DEFAULT_PRUNE_AGE if older_than is None else validation.parse_duration(older_than)


def preview_prune(rt: Runtime, *, older_than: str | None = None) -> PrunePlan:
    """The keys :func:`prune_expired` would soft-delete now (to confirm first)."""
    age = _prune_age(older_than)

    def read(uow: UnitOfWork) -> PrunePlan:
        now = utcnow()
        keys = uow.keys.list_expired(now=now, older_than=age, include_revoked=True)
        return PrunePlan(candidates=tuple(_view(key, now) for key in keys), cutoff=now - age)

    return rt.db.run(read, read_only=True)


def prune_expired(rt: Runtime, *, older_than: str | None = None) -> PruneResult:
    """Soft-delete keys expired or revoked more than ``older_than`` ago."""
    age = _prune_age(older_than)

    def prune(uow: UnitOfWork) -> PruneResult:
        now = utcnow()
        keys = uow.keys.list_expired(now=now, older_than=age, include_revoked=True)
        for key in keys:
            uow.keys.delete(key)
            uow.audit.append(
                action="api_key.prune",
                resource_type=RESOURCE_TYPE,
                resource_id=str(key.id),
                user_id=key.user_id,
                changes={
                    "name": key.name,
                    "key_prefix": key.key_prefix,
                    "expires_at": key.expires_at,
                    "revoked_at": key.revoked_at,
                    "is_deleted": True,
                },
            )
        return PruneResult(
            pruned=len(keys), cutoff=now - age, key_ids=tuple(key.id for key in keys)
        )

    return _mutation(rt, prune, action="api_key.prune")


# -- verifying -----------------------------------------------------------------------
def verify_key(
    rt: Runtime,
    plaintext: str,
    *,
    required_scope: str | None = None,
    record_usage: bool = False,
) -> Verification:
    """Check a key (Denied with the reason if unusable); optionally count the use.

    The format and checksum are checked before ``rt.db`` is touched, so a
    malformed key costs no engine, no connection and no query.  The schema
    is checked (``rt.ensure_schema``) only after that: callers pass a Runtime
    whose schema has not been checked yet.
    """
    if required_scope is not None:
        required_scope = required_scope.strip()
        validation.normalize_scopes([required_scope])  # InvalidInput for an unknown scope
    key_format.ensure_well_formed(plaintext)  # Denied, with no query
    rt.ensure_schema()

    def check(uow: UnitOfWork) -> Verification:
        now = utcnow()
        key = uow.keys.authenticate_key(plaintext, now=now, required_scope=required_scope)
        if record_usage:
            uow.keys.record_usage(key, now=now)
            uow.audit.append(
                action="api_key.use",
                resource_type=RESOURCE_TYPE,
                resource_id=str(key.id),
                user_id=key.user_id,
                changes={"usage_count": key.usage_count, "last_used_at": key.last_used_at},
            )
        return Verification(
            valid=True,
            key_id=key.id,
            key_prefix=key.key_prefix,
            name=key.name,
            user_id=key.user_id,
            username=key.user.username,
            scopes=tuple(sorted(s for s, granted in key.permissions.items() if granted)),
            expires_at=key.expires_at,
            required_scope=required_scope,
            usage_count=key.usage_count,
            last_used_at=key.last_used_at,
            usage_recorded=record_usage,
        )

    if not record_usage:
        return rt.db.run(check, read_only=True)
    return _mutation(rt, check, action="api_key.use")
