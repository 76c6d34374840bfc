"""The life of an API key, the work behind ``vutf keys create``, ``rotate``, ``extend`` and
``set-scopes``.

Every function takes the :class:`~vutf_cli.db.database.Database` and
primitives (strings as typed on the command line, checked by
:mod:`vutf_cli.services.key_arguments` before the database is touched), does
its work in one audited transaction (:mod:`vutf_cli.services.key_transactions`)
and returns frozen views built inside that transaction.  The other key
services: listing and showing (:mod:`vutf_cli.services.key_queries`),
revoking (:mod:`vutf_cli.services.key_revocation`), pruning
(:mod:`vutf_cli.services.key_pruning`) and verifying
(:mod:`vutf_cli.services.key_verification`).

Decisions (the command reference in the README repeats them):

Scopes
    ``create`` defaults to :data:`DEFAULT_SCOPES` (``read``, the least
    privilege that still makes a useful key); ``set-scopes`` has no default:
    at least one scope must be named.  ``set-scopes`` to the same scopes
    changes nothing and writes nothing.

Expiry
    A new key expires after :data:`DEFAULT_EXPIRY` (90 days) unless
    ``--expires-in``, ``--expires-at`` or ``--no-expiry`` says otherwise (the
    three are mutually exclusive, exit 2).  A forgotten key that never
    expires is the classic leaked credential; making "forever" an explicit,
    audited choice costs a script one flag, and ``keys list
    --expiring-within`` shows what is about to lapse.  An expiry in the past
    is refused (exit 2).  ``--expires-at`` takes an ISO 8601 date or
    date-time (no zone means local time: VUTF_TIMEZONE, else the system's zone).

Names and re-runs
    A name is unique among the owner's keys that are not deleted; a revoked
    or expired key keeps its name (and its history) until ``vutf keys
    delete`` soft-deletes it, and the conflict names that command and the
    key.  ``create --if-not-exists`` returns an *active* key of that name
    unchanged (``created`` false, no audit row, no plaintext: the secret
    was shown once, when it was made); a revoked or expired key of that
    name is still a conflict, since it would not work.

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

    The old key's end is set only once the new key is delivered: the new
    key and the renaming commit first (audited ``api_key.rotate``), then
    ``deliver`` shows the new key, then a second transaction sets the old
    key's expiry to the end computed in the first (audited
    ``api_key.retire``).  A new key that could not be delivered must not
    take the working key with it; if ``deliver`` fails, the old key keeps
    its expiry and the caller reports both keys.  Between the two
    transactions both keys work, as they would during a grace period.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, User
from vutf_cli.db.repositories.api_keys import NAME_MAX_LENGTH
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain import validation
from vutf_cli.domain.views import ApiKeyView, api_key_state
from vutf_cli.errors import Conflict, InvalidInput, VutfError
from vutf_cli.services import audit_trail, user_changes
from vutf_cli.services.key_arguments import (
    check_reference,
    parse_optional_duration,
    parse_scopes,
    requested_expiry,
)
from vutf_cli.services.key_transactions import (
    key_mutation,
    key_row,
    key_view,
    lookup_user,
)
from vutf_cli.services.permissions import authorize_key_scopes

__all__ = [
    "DEFAULT_EXPIRY",
    "DEFAULT_SCOPES",
    "ExpiryChange",
    "IssuedKey",
    "ScopeChange",
    "create_key",
    "existing_key",
    "extend_key",
    "issue_key_in",
    "rotate_key",
    "set_expiry_in",
    "set_scopes",
    "set_scopes_in",
]

DEFAULT_SCOPES: Final = ("read",)
DEFAULT_EXPIRY: Final = timedelta(days=90)

_ROTATED_RE: Final = re.compile(r" \(rotated \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\)$")


# -- views ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly issued key and its plaintext, which is shown once and never stored.

    ``replaced`` is the key a rotation replaced: before delivery (the
    ``deliver`` callback of :func:`rotate_key`) as the first transaction left
    it, still working; afterwards as the rotation left it.  ``replaced_ends_at``
    is when it stops working once the new key is delivered.
    """

    api_key: ApiKeyView
    plaintext: str = field(repr=False)
    replaced: ApiKeyView | None = None
    replaced_ends_at: datetime | None = None
    # False for create --if-not-exists when the key existed (plaintext is then "").
    created: bool = True


@dataclass(frozen=True, slots=True)
class ExpiryChange:
    api_key: ApiKeyView
    previous_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScopeChange:
    api_key: ApiKeyView
    previous_scopes: tuple[str, ...]
    changed: bool


def _rotated_name(name: str, now: datetime) -> str:
    suffix = f" (rotated {now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')})"
    return name[: NAME_MAX_LENGTH - len(suffix)].rstrip() + suffix


# -- the changes inside a caller's transaction ---------------------------------------
# Each makes one change in ``uow`` and returns its audit row (the keyword
# arguments of ``audit_trail.append``), or None when nothing changed; the
# commands below append it, ``vutf apply`` collects it for one bulk append.
# Scopes are authorized by the caller first (``authorize_key_scopes``), whose
# ``forced`` scopes the row lists.
def _forced(forced: Sequence[str]) -> dict[str, Any]:
    return {"forced_scopes": list(forced)} if forced else {}


def issue_key_in(
    uow: UnitOfWork,
    owner: User,
    *,
    name: str,
    permissions: dict[str, bool],
    expires_at: datetime | None,
    now: datetime,
    description: str | None = None,
    forced: Sequence[str] = (),
    known_free: bool = False,
) -> tuple[ApiKey, str, dict[str, Any]]:
    """Issue a key for ``owner``: the key, its plaintext (never in the row) and its row.

    ``known_free``: see :meth:`ApiKeyRepository.create_key`.
    """
    key, plaintext = uow.keys.create_key(
        user=owner,
        name=name,
        permissions=permissions,
        expires_at=expires_at,
        description=description,
        now=now,
        known_free=known_free,
    )
    row = key_row(
        "api_key.create",
        key,
        {
            "name": key.name,
            "key_prefix": key.key_prefix,
            "scopes": sorted(key.permissions),
            "expires_at": key.expires_at,
            "description": key.description,
            **_forced(forced),
        },
    )
    return key, plaintext, row


def set_scopes_in(
    uow: UnitOfWork, key: ApiKey, permissions: dict[str, bool], *, forced: Sequence[str] = ()
) -> dict[str, Any] | None:
    """Replace ``key``'s scopes; its ``api_key.set_scopes`` row, None if they were the same."""
    previous = sorted(scope for scope, granted in key.permissions.items() if granted)
    version = key.version
    uow.keys.update_permissions(key, permissions)
    if key.version == version:
        return None
    return key_row(
        "api_key.set_scopes",
        key,
        {"scopes": {"old": previous, "new": sorted(key.permissions)}, **_forced(forced)},
    )


def set_expiry_in(
    uow: UnitOfWork, key: ApiKey, expires_at: datetime | None, *, now: datetime
) -> dict[str, Any]:
    """Set ``key``'s expiry (None: never); its ``api_key.extend`` row."""
    previous = key.expires_at
    uow.keys.set_expiry(key, expires_at, now=now)
    return key_row("api_key.extend", key, {"expires_at": {"old": previous, "new": key.expires_at}})


# -- issuing -------------------------------------------------------------------------
def create_key(
    db: Database,
    *,
    user: str,
    name: str,
    scopes: Sequence[str] = (),
    expires_in: str | None = None,
    expires_at: str | None = None,
    no_expiry: bool = False,
    description: str | None = None,
    if_not_exists: bool = False,
    force: bool = False,
) -> IssuedKey:
    """Issue a key named ``name`` for ``user`` (username, email or id).

    Scopes the owner does not hold are refused (Denied) unless ``force`` by
    a superuser actor (:func:`vutf_cli.services.permissions.authorize_key_scopes`;
    the audit row lists them as ``forced_scopes``).

    With ``if_not_exists`` an active key of that name is returned as it is
    (``created`` false, an empty ``plaintext``, nothing written).
    """
    permissions = parse_scopes(scopes, default=DEFAULT_SCOPES)
    description = validation.validate_description(description)
    # Checked now so bad input fails before the database; re-checked in the transaction.
    requested_expiry(
        expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=utcnow()
    )

    def issue(uow: UnitOfWork) -> IssuedKey:
        now = utcnow()
        requested, expiry = requested_expiry(
            expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=now
        )
        owner = lookup_user(uow, user)
        holder = next((k for k in uow.keys.list_for_user(owner.id) if k.name == name.strip()), None)
        if holder is not None:
            state = api_key_state(holder, now)
            if if_not_exists and state == "active":
                return IssuedKey(api_key=key_view(holder, now), plaintext="", created=False)
            raise _name_taken(owner.username, holder.name, holder.key_prefix, state)
        forced = authorize_key_scopes(uow, owner, permissions, now, force=force)
        key, plaintext, row = issue_key_in(
            uow,
            owner,
            name=name,
            permissions=permissions,
            expires_at=expiry if requested else now + DEFAULT_EXPIRY,
            description=description,
            now=now,
            forced=forced,
        )
        audit_trail.append(uow, **row)
        return IssuedKey(api_key=key_view(key, now), plaintext=plaintext)

    return key_mutation(db, issue, action="api_key.create", subject=user_changes.subject(user))


def existing_key(db: Database, *, user: str, name: str) -> ApiKeyView | None:
    """The active key ``name`` of ``user`` if there is one (``create --if-not-exists``).

    Read first so that an existing key costs no secret file; a key of that
    name that is not active is left to :func:`create_key` to refuse.
    """

    def read(uow: UnitOfWork) -> ApiKeyView | None:
        now = utcnow()
        owner = uow.users.get_by_identifier(user)
        if owner is None:
            return None  # create_key refuses it, with its failure row
        for key in uow.keys.list_for_user(owner.id):
            if key.name == name.strip() and api_key_state(key, now) == "active":
                return key_view(key, now)
        return None

    return db.run(read, read_only=True)


def _name_taken(owner: str, name: str, prefix: str, state: str) -> Conflict:
    if state == "active":
        hint = (
            f"choose another name, or replace it: vutf keys rotate {prefix} "
            f"(or end it: vutf keys delete {prefix})"
        )
    else:
        hint = f"free the name: vutf keys delete {prefix}"
    return Conflict(
        f"user '{owner}' already has an API key named '{name}' ({prefix}, {state})", hint=hint
    )


def rotate_key(
    db: Database,
    ref: str,
    *,
    grace: str | None = None,
    expires_in: str | None = None,
    expires_at: str | None = None,
    no_expiry: bool = False,
    deliver: Callable[[IssuedKey], None] | None = None,
) -> IssuedKey:
    """Replace an active key by a new one; the old one works for ``grace`` more.

    ``deliver`` is called with the new key after it is committed and before
    the old key's end is set; when it raises, the old key keeps working and
    the exception propagates.  Without it the key counts as delivered when
    this returns it.
    """
    ref = check_reference(ref)
    grace_period = parse_optional_duration(grace)
    requested_expiry(
        expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=utcnow()
    )

    def rotate(uow: UnitOfWork) -> tuple[IssuedKey, uuid.UUID, datetime]:
        now = utcnow()
        requested, expiry = requested_expiry(
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
        original_name = old.name
        # Rename first: the new key takes the name, unique per owner among live keys.
        uow.keys.update(old, name=_rotated_name(original_name, now))
        new, plaintext = uow.keys.create_key(
            user=old.user,
            name=original_name,
            permissions=dict(old.permissions),
            expires_at=expiry,
            description=old.description,
            now=now,
        )
        audit_trail.append(
            uow,
            **key_row(
                "api_key.rotate",
                old,
                {
                    "name": {"old": original_name, "new": old.name},
                    "replaced_by": {
                        "id": new.id,
                        "key_prefix": new.key_prefix,
                        "name": new.name,
                        "scopes": sorted(new.permissions),
                        "expires_at": new.expires_at,
                    },
                },
            ),
        )
        issued = IssuedKey(
            api_key=key_view(new, now),
            plaintext=plaintext,
            replaced=key_view(old, now),
            replaced_ends_at=old_end,
        )
        return issued, old.id, old_end

    issued, old_id, ends_at = key_mutation(db, rotate, action="api_key.rotate", resource_id=ref)
    if deliver is not None:
        deliver(issued)
    try:
        return _retire_replaced(db, issued, old_id, ends_at)
    except VutfError as exc:
        # The new key is out; say so, and that the old one has not stopped.
        old_prefix = issued.replaced.key_prefix if issued.replaced else str(old_id)
        exc.message = (
            f"the new key {issued.api_key.key_prefix} was issued, but the old key "
            f"{old_prefix} could not be ended and still works: {exc.message}"
        )
        exc.hint = f"once the new key is in use, revoke the old one: vutf keys revoke {old_prefix}"
        raise


def _retire_replaced(
    db: Database, issued: IssuedKey, old_id: uuid.UUID, ends_at: datetime
) -> IssuedKey:
    """End the replaced key at ``ends_at``, never later than it would have ended anyway."""
    new = issued.api_key

    def retire(uow: UnitOfWork) -> IssuedKey:
        now = utcnow()
        old = uow.keys.get(old_id)
        if old is None or old.revoked_at is not None:
            # Deleted or revoked meanwhile: it has already stopped working.
            return issued
        previous = old.expires_at
        end = ends_at if previous is None else min(previous, ends_at)
        if end != previous:
            uow.keys.update(old, expires_at=end)
            audit_trail.append(
                uow,
                **key_row(
                    "api_key.retire",
                    old,
                    {
                        "expires_at": {"old": previous, "new": end},
                        "replaced_by": {"id": new.id, "key_prefix": new.key_prefix},
                    },
                ),
            )
        return replace(issued, replaced=key_view(old, now))

    return key_mutation(db, retire, action="api_key.retire", resource_id=str(old_id))


# -- changing ------------------------------------------------------------------------
def extend_key(
    db: Database,
    ref: str,
    *,
    expires_in: str | None = None,
    expires_at: str | None = None,
    no_expiry: bool = False,
) -> ExpiryChange:
    """Set a key's expiry to ``now + expires_in``, to ``expires_at``, or to never."""
    ref = check_reference(ref)
    requested, _ = requested_expiry(
        expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=utcnow()
    )
    if not requested:
        raise InvalidInput("give the new expiry: --expires-in, --expires-at or --no-expiry")

    def extend(uow: UnitOfWork) -> ExpiryChange:
        now = utcnow()
        _, expiry = requested_expiry(
            expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=now
        )
        key = uow.keys.resolve(ref)
        previous = key.expires_at
        audit_trail.append(uow, **set_expiry_in(uow, key, expiry, now=now))
        return ExpiryChange(api_key=key_view(key, now), previous_expires_at=previous)

    return key_mutation(db, extend, action="api_key.extend", resource_id=ref)


def set_scopes(
    db: Database, ref: str, scopes: Sequence[str], *, force: bool = False
) -> ScopeChange:
    """Replace a key's scopes; the same scopes again change (and audit) nothing.

    Scopes the owner does not hold are refused as by :func:`create_key`.
    """
    ref = check_reference(ref)
    permissions = parse_scopes(scopes)

    def change(uow: UnitOfWork) -> ScopeChange:
        now = utcnow()
        key = uow.keys.resolve(ref)
        previous = tuple(sorted(scope for scope, granted in key.permissions.items() if granted))
        forced = authorize_key_scopes(uow, key.user, permissions, now, force=force)
        row = set_scopes_in(uow, key, permissions, forced=forced)
        changed = row is not None
        if row is not None:
            audit_trail.append(uow, **row)
        return ScopeChange(api_key=key_view(key, now), previous_scopes=previous, changed=changed)

    return key_mutation(db, change, action="api_key.set_scopes", resource_id=ref)
