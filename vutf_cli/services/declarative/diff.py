"""The difference between a declared identity and the database, as the audit rows it would append.

One change is one audit row: its ``action``, ``resource_type`` and
``changes`` are exactly those the imperative command writes
(:mod:`vutf_cli.services.users`, :mod:`vutf_cli.services.keys`,
:mod:`vutf_cli.services.key_revocation`), so ``vutf plan`` shows the rows
``vutf apply`` appends.  Values only the write can know (a new key's
prefix, a default expiry counted from the commit, the revocation instant)
are :data:`AFTER_APPLY`.

The order is the order of application: roles, users, role memberships (a
new key's owner may be a new user, its scopes checked against the owner's
roles), keys, and last what ``--prune`` ends (keys revoked, users
deactivated; nothing is ever deleted).  Roles and memberships are
:mod:`.roles`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select

from vutf_cli.db.models import ApiKey, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.validation import identity_key
from vutf_cli.domain.views import api_key_state
from vutf_cli.errors import Conflict, InvalidInput, NotFound
from vutf_cli.services.declarative.change import AFTER_APPLY, Change
from vutf_cli.services.declarative.format import DesiredKey, DesiredUser, Identity
from vutf_cli.services.declarative.roles import membership_changes, role_changes

__all__ = ["AFTER_APPLY", "Change", "changes_between"]


def changes_between(
    uow: UnitOfWork, identity: Identity, *, prune: bool, now: datetime
) -> list[Change]:
    """What applying ``identity`` to the database of ``uow`` would change, in order.

    Refuses what apply could not do: a key whose owner exists nowhere
    (NotFound), an email held by another user or a revoked key's name
    (Conflict), un-verifying a user or an expiry in the past (InvalidInput).
    """
    users = {identity_key(user.username): user for user in _live_users(uow, identity, prune)}
    changes = list(role_changes(uow, identity))
    changes.extend(_user_changes(uow, identity, users))
    # Before the keys: a key's scopes are checked against its owner's roles.
    changes.extend(membership_changes(uow, identity, users, now))
    declared = {identity_key(user.username) for user in identity.users}
    keys_by_owner: dict[uuid.UUID, list[ApiKey]] = {}
    for key in _live_keys(uow, None if prune else [user.id for user in users.values()]):
        keys_by_owner.setdefault(key.user_id, []).append(key)
    kept: set[uuid.UUID] = set()
    for wanted in identity.keys:
        owner = users.get(identity_key(wanted.owner))
        if owner is None and identity_key(wanted.owner) not in declared:
            raise NotFound(
                f"API key '{wanted.name}' names the owner '{wanted.owner}', who does not exist",
                hint="declare the user in the file, or fix the owner",
            )
        held = keys_by_owner.get(owner.id, []) if owner is not None else []
        existing = next((key for key in held if key.name == wanted.name), None)
        if existing is not None:
            kept.add(existing.id)
        changes.extend(_key_changes(wanted, existing, now))
    if prune:
        changes.extend(_pruned_keys(keys_by_owner, kept, users))
        changes.extend(
            _change(
                "user.deactivate",
                "user",
                user.username,
                str(user.id),
                {"is_active": False},
            )
            for name, user in sorted(users.items())
            if name not in declared and user.is_active
        )
    return changes


# Names per IN (...) list: well below SQLite's and PostgreSQL's parameter limits.
_CHUNK: Final = 500


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _live_users(uow: UnitOfWork, identity: Identity, prune: bool) -> list[User]:
    """The live users the plan needs: all of them with ``prune``, else those the file names.

    Named: by username (declared users, key owners) or by email (another
    user holding a declared email), in a few queries of at most
    :data:`_CHUNK` names, so memory follows the file, not the database.
    """
    live = User.is_deleted.is_(False)
    if prune:
        return list(uow.session.scalars(select(User).where(live).order_by(User.username)))
    names = sorted(
        {user.username.lower() for user in identity.users}
        | {key.owner.lower() for key in identity.keys}
    )
    emails = sorted({user.email.lower() for user in identity.users})
    found: dict[uuid.UUID, User] = {}
    for column, values in ((User.username, names), (User.email, emails)):
        for chunk in _chunks(values):
            stmt = select(User).where(live, func.lower(column).in_(chunk))
            found.update((user.id, user) for user in uow.session.scalars(stmt))
    return sorted(found.values(), key=lambda user: user.username)


def _live_keys(uow: UnitOfWork, owners: Sequence[uuid.UUID] | None) -> list[ApiKey]:
    """The keys that are not deleted: every one (``owners`` None), or those of ``owners``."""
    live = ApiKey.is_deleted.is_(False)
    if owners is None:
        return list(uow.session.scalars(select(ApiKey).where(live).order_by(ApiKey.created_at)))
    keys: list[ApiKey] = []
    for chunk in _chunks(owners):
        stmt = select(ApiKey).where(live, ApiKey.user_id.in_(chunk)).order_by(ApiKey.created_at)
        keys.extend(uow.session.scalars(stmt))
    return keys


def _change(
    action: str,
    resource_type: str,
    resource: str,
    resource_id: str,
    changes: dict[str, Any],
    target: DesiredUser | DesiredKey | None = None,
) -> Change:  # (positional: keeps the many call sites short)
    return Change(action, resource_type, resource, resource_id, changes, target)


def _user_changes(uow: UnitOfWork, identity: Identity, users: dict[str, User]) -> Iterator[Change]:
    emails = {identity_key(user.email): user for user in users.values()}
    for wanted in identity.users:
        row = users.get(identity_key(wanted.username))
        holder = emails.get(identity_key(wanted.email))
        if holder is not None and holder is not row:
            raise Conflict(
                f"user '{wanted.username}': the email {wanted.email} belongs to "
                f"user '{holder.username}'"
            )
        if row is None:
            yield _change(
                "user.create",
                "user",
                wanted.username,
                AFTER_APPLY,
                {
                    "username": wanted.username,
                    "email": wanted.email,
                    "full_name": wanted.full_name,
                    "is_active": wanted.active,
                    "is_superuser": wanted.superuser,
                    "is_verified": wanted.verified,
                },
                wanted,
            )
            continue
        yield from _user_updates(wanted, row)


def _user_updates(wanted: DesiredUser, row: User) -> Iterator[Change]:
    ident = str(row.id)
    updates: dict[str, Any] = {}
    if row.email != wanted.email:
        updates["email"] = {"old": row.email, "new": wanted.email}
    if "full_name" in wanted.given and row.full_name != wanted.full_name:
        updates["full_name"] = {"old": row.full_name, "new": wanted.full_name}
    if "superuser" in wanted.given and row.is_superuser != wanted.superuser:
        updates["is_superuser"] = {"old": row.is_superuser, "new": wanted.superuser}
    if updates:
        yield _change("user.update", "user", row.username, ident, updates, wanted)
    if "active" in wanted.given and row.is_active != wanted.active:
        action = "user.activate" if wanted.active else "user.deactivate"
        yield _change(action, "user", row.username, ident, {"is_active": wanted.active}, wanted)
    if "verified" in wanted.given and row.is_verified != wanted.verified:
        if not wanted.verified:
            raise InvalidInput(
                f"user '{row.username}' is verified; a verification cannot be undone",
                hint="declare verified: true, or leave the field out",
            )
        yield _change("user.verify", "user", row.username, ident, {"is_verified": True}, wanted)


def _key_changes(wanted: DesiredKey, key: ApiKey | None, now: datetime) -> Iterator[Change]:
    resource = f"{wanted.owner}/{wanted.name}"
    if "expires_at" in wanted.given and wanted.expires_at is not None and wanted.expires_at <= now:
        raise InvalidInput(f"API key '{resource}': expires_at is in the past")
    if key is None:
        scopes = sorted(wanted.scopes or ("read",))
        expiry: Any = wanted.expires_at if "expires_at" in wanted.given else AFTER_APPLY
        yield _change(
            "api_key.create",
            "api_key",
            resource,
            AFTER_APPLY,
            {
                "name": wanted.name,
                "key_prefix": AFTER_APPLY,
                "scopes": scopes,
                "expires_at": expiry,
                "description": None,
            },
            wanted,
        )
        return
    if api_key_state(key, now) == "revoked":
        raise Conflict(
            f"API key '{resource}' ({key.key_prefix}) is revoked",
            hint=f"free the name: vutf keys delete {key.key_prefix}",
        )
    ident = str(key.id)
    held = sorted(scope for scope, granted in key.permissions.items() if granted)
    if wanted.scopes is not None and list(wanted.scopes) != held:
        yield _change(
            "api_key.set_scopes",
            "api_key",
            resource,
            ident,
            {"scopes": {"old": held, "new": sorted(wanted.scopes)}},
            wanted,
        )
    if "expires_at" in wanted.given and key.expires_at != wanted.expires_at:
        yield _change(
            "api_key.extend",
            "api_key",
            resource,
            ident,
            {"expires_at": {"old": key.expires_at, "new": wanted.expires_at}},
            wanted,
        )


def _pruned_keys(
    keys_by_owner: dict[uuid.UUID, list[ApiKey]], kept: set[uuid.UUID], users: dict[str, User]
) -> Iterator[Change]:
    names = {user.id: user.username for user in users.values()}
    for owner_id, keys in keys_by_owner.items():
        for key in keys:
            if key.id in kept or key.revoked_at is not None:
                continue
            yield _change(
                "api_key.revoke",
                "api_key",
                f"{names.get(owner_id, owner_id)}/{key.name}",
                str(key.id),
                {"name": key.name, "key_prefix": key.key_prefix, "revoked_at": AFTER_APPLY},
            )
