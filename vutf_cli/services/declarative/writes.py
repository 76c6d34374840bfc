"""Writing the changes of a plan inside apply's one transaction, each with its audit row.

Each action calls the in-transaction function of the service that owns it,
the one the imperative command calls too (``users create|update|activate|
deactivate|verify``: :mod:`vutf_cli.services.users`; ``keys create|set-scopes|
extend``: :mod:`vutf_cli.services.keys`; ``keys revoke``:
:mod:`vutf_cli.services.key_revocation`; roles and memberships: :mod:`.roles`).
It makes the change and returns the audit row, built there and nowhere else,
so a change writes the same row whichever command made it.  Apply collects
the rows in plan order and appends them once, by
:func:`~vutf_cli.services.audit_trail.append_many` (secrets scrubbed, key
stamped, chained as every row is): one bulk INSERT instead of one per change,
which is most of what applying 10,000 changes costs.  Owners, roles and
scope checks are looked up once per name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from vutf_cli.db.models import Role, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.services import audit_trail
from vutf_cli.services.declarative.change import Change, differs_from_plan
from vutf_cli.services.declarative.format import DesiredKey, DesiredUser
from vutf_cli.services.key_revocation import revoke_key_in
from vutf_cli.services.keys import DEFAULT_EXPIRY, issue_key_in, set_expiry_in, set_scopes_in
from vutf_cli.services.permissions import authorize_key_scopes
from vutf_cli.services.roles import roles_of
from vutf_cli.services.users import create_user_in, set_active_in, update_user_in, verify_user_in

__all__ = ["NewSecret", "Writer", "write_change"]


@dataclass(frozen=True, slots=True)
class NewSecret:
    """A one-time secret of a new object: ``kind`` "password" (of ``owner``) or "api_key"."""

    kind: str
    owner: str
    name: str
    secret: str


class Writer:
    """The transaction apply writes in, its audit rows so far, and what it looked up."""

    def __init__(self, uow: UnitOfWork, now: datetime, hashes: Mapping[str, str]) -> None:
        self.uow = uow
        self.now = now
        self.hashes = hashes
        self.rows: list[dict[str, Any]] = []
        self._users: dict[str, User] = {}
        self._roles: dict[str, Role] = {}
        self._authorized: set[tuple[uuid.UUID, tuple[str, ...]]] = set()
        self._kind = ""

    def begin(self, resource_type: str) -> None:
        """Flush the objects written so far when a change of another kind begins."""
        if resource_type != self._kind:
            self.uow.session.flush()
            self._kind = resource_type

    def collect(self, row: dict[str, Any] | None) -> None:
        """Keep a change's audit row (built by its service) for the one bulk append.

        None means the change changed nothing, so the plan's row would not be
        written: the database is not as the plan was computed against.
        """
        if row is None:
            raise differs_from_plan()
        self.rows.append(row)

    def append_rows(self) -> range:
        return audit_trail.append_many(self.uow, self.rows) if self.rows else range(0)

    def user(self, username: str) -> User:
        user = self._users.get(username.lower())
        if user is None:
            user = self.uow.users.require(username)
            self._users[username.lower()] = user
        return user

    def remember(self, user: User) -> None:
        self._users[user.username.lower()] = user

    def locked_role(self, name: str) -> Role:
        """The live role ``name``, locked once (as add-role/remove-role lock it)."""
        role = self._roles.get(name.lower())
        if role is None:
            roles, _ = roles_of(self.uow)
            role = roles.lock(roles.require(name))
            self._roles[name.lower()] = role
        return role

    def authorize(self, owner: User, permissions: dict[str, bool]) -> None:
        """``keys create``'s check that ``owner`` holds the scopes, once per owner and scopes."""
        key = (owner.id, tuple(sorted(permissions)))
        if key not in self._authorized:
            authorize_key_scopes(self.uow, owner, permissions, self.now, force=False)
            self._authorized.add(key)


# -- users ---------------------------------------------------------------------------------
def _create_user(w: Writer, change: Change) -> NewSecret:
    wanted = change.target
    assert isinstance(wanted, DesiredUser)
    user, row = create_user_in(
        w.uow,
        username=wanted.username,
        email=wanted.email,
        password_hash=w.hashes[wanted.username.lower()],
        full_name=wanted.full_name,
        is_superuser=wanted.superuser,
        is_verified=wanted.verified,
        is_active=wanted.active,
        known_free=True,  # the plan, computed again in this transaction, found them free
    )
    w.remember(user)
    w.collect(row)
    # The clear password is matched to the user by the caller (it never enters here).
    return NewSecret("password", user.username, user.username, "")


def _update_user(w: Writer, change: Change) -> None:
    values = {name: value["new"] for name, value in change.changes.items()}
    w.collect(update_user_in(w.uow, w.user(change.resource), values))


def _set_active(w: Writer, change: Change) -> None:
    active = bool(change.changes["is_active"])
    w.collect(set_active_in(w.uow, w.user(change.resource), active))


def _verify(w: Writer, change: Change) -> None:
    w.collect(verify_user_in(w.uow, w.user(change.resource)))


# -- keys ----------------------------------------------------------------------------------
def _create_key(w: Writer, change: Change) -> NewSecret:
    wanted = change.target
    assert isinstance(wanted, DesiredKey)
    owner = w.user(wanted.owner)
    permissions = dict.fromkeys(change.changes["scopes"], True)
    w.authorize(owner, permissions)  # without force: nothing is ever forced here
    expiry = wanted.expires_at if "expires_at" in wanted.given else w.now + DEFAULT_EXPIRY
    key, plaintext, row = issue_key_in(
        w.uow,
        owner,
        name=wanted.name,
        permissions=permissions,
        expires_at=expiry,
        now=w.now,
        known_free=True,  # the plan read the owner's live keys in this transaction
    )
    w.collect(row)
    return NewSecret("api_key", owner.username, key.name, plaintext)


def _set_scopes(w: Writer, change: Change) -> None:
    key = w.uow.keys.resolve(change.resource_id)
    permissions = dict.fromkeys(change.changes["scopes"]["new"], True)
    # As `keys set-scopes`: a key never gains a scope its owner does not hold.
    w.authorize(key.user, permissions)
    w.collect(set_scopes_in(w.uow, key, permissions))


def _extend(w: Writer, change: Change) -> None:
    key = w.uow.keys.resolve(change.resource_id)
    w.collect(set_expiry_in(w.uow, key, change.changes["expires_at"]["new"], now=w.now))


def _revoke(w: Writer, change: Change) -> None:
    w.collect(revoke_key_in(w.uow, w.uow.keys.resolve(change.resource_id), now=w.now))


Write = Callable[[Writer, Change], NewSecret | None]

_WRITES: Final[dict[str, Write]] = {
    "user.create": _create_user,
    "user.update": _update_user,
    "user.activate": _set_active,
    "user.deactivate": _set_active,
    "user.verify": _verify,
    "api_key.create": _create_key,
    "api_key.set_scopes": _set_scopes,
    "api_key.extend": _extend,
    "api_key.revoke": _revoke,
}


def write_change(w: Writer, change: Change) -> NewSecret | None:
    """Make ``change`` in ``w``'s transaction and record its audit row.

    Called inside ``uow.flushing_once()``: the rows of one kind of object go
    in together, flushed when the next kind begins (the plan's order), so
    what a change checks (a key's owner's roles) sees the kinds before it.
    """
    from vutf_cli.services.declarative.roles import WRITES as ROLE_WRITES

    w.begin(change.resource_type)
    write = _WRITES.get(change.action) or ROLE_WRITES[change.action]
    return write(w, change)
