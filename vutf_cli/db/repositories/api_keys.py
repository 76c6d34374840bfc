"""ApiKeyRepository: issuing, looking up, authenticating and revoking API keys.

The plaintext key exists only in the return value of :meth:`create_key`; the
table holds its 12-character display prefix and its digest (HMAC-SHA256 with
the pepper, or SHA-256 without one).  A malformed key or a bad checksum is
refused by :func:`~vutf_cli.security.api_keys.ensure_well_formed` before any
query is sent, and lookups go through the unique index on ``key_hash``.

Like every repository this one receives a session and never commits.
"""

from __future__ import annotations

import functools
import ipaddress
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from vutf_cli.db.models import ApiKey, Role, User, UserRole
from vutf_cli.db.repositories.base import BaseRepository
from vutf_cli.db.repositories.roles import counting
from vutf_cli.db.types import utcnow
from vutf_cli.domain import validation
from vutf_cli.errors import Conflict, Denied, InvalidInput, NotFound
from vutf_cli.security import api_keys as key_format

__all__ = [
    "KEY_STATES",
    "MIN_RESOLVE_PREFIX",
    "NAME_MAX_LENGTH",
    "ApiKeyRepository",
    "KeyCredential",
    "KeyUsage",
]

NAME_MAX_LENGTH: Final = 100
# "vutf_" plus three random characters: short enough to type, long enough
# that an accidental match is unlikely in a realistic number of keys.
MIN_RESOLVE_PREFIX: Final = 8
KEY_STATES: Final = ("active", "expired", "revoked", "deleted")

# Same rule as full names: controls, lone surrogates, line/paragraph
# separators and bidi overrides would corrupt or disguise a one-line listing.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHOWN_CHARS: Final = 40


def _show(value: str) -> str:
    """``repr`` of a user-supplied value, truncated: safe in an error message."""
    if len(value) > _SHOWN_CHARS:
        return repr(value[:_SHOWN_CHARS]) + f" (truncated, {len(value)} characters)"
    return repr(value)


def _validate_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise InvalidInput("API key name must not be empty")
    if len(cleaned) > NAME_MAX_LENGTH:
        raise InvalidInput(
            f"API key name too long: at most {NAME_MAX_LENGTH} characters (got {len(cleaned)})"
        )
    for ch in cleaned:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            raise InvalidInput(
                f"invalid API key name {_show(cleaned)}: control and formatting characters "
                f"(here U+{ord(ch):04X}) are not allowed"
            )
    return cleaned


def _normalize_permissions(permissions: Mapping[str, bool]) -> dict[str, bool]:
    """Validate every scope named (granted or not) and keep the granted ones."""
    raw: object = permissions  # callers may pass anything decoded from input
    if not isinstance(raw, Mapping):
        raise InvalidInput("permissions must be a mapping of scope to true/false")
    for scope, granted in permissions.items():
        if not isinstance(granted, bool):
            raise InvalidInput(
                f"permission {_show(str(scope))} must be true or false, "
                f"not {type(granted).__name__}"
            )
    validation.normalize_scopes(list(permissions))  # raises InvalidInput for unknown scopes
    return validation.normalize_scopes(scope for scope, granted in permissions.items() if granted)


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} must include a time zone (got a naive datetime)")
    return value


def _validate_ip(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        raise InvalidInput(f"invalid IP address {_show(ip)}") from None


_KEYS_TABLE: Final = cast(Table, ApiKey.__table__)


@dataclass(frozen=True, slots=True)
class KeyCredential:
    """What verifying a key needs of it and its owner, read as plain values.

    :meth:`ApiKeyRepository.authenticate_key_with_roles` reads these columns
    in one Core statement instead of loading the key and its owner as ORM
    objects: the lookup sits in a web service's request path, and building
    and tracking two ORM objects cost about a third of a verification's CPU.
    """

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    key_prefix: str
    permissions: Mapping[str, bool]
    expires_at: datetime | None
    usage_count: int
    last_used_at: datetime | None
    owner_username: str
    owner_is_superuser: bool


class KeyUsage(NamedTuple):
    """A key's usage counters right after :meth:`ApiKeyRepository.record_usage`."""

    usage_count: int
    last_used_at: datetime | None
    last_used_ip: str | None


@functools.cache
def _authenticate_statement() -> Select[Any]:
    """The key with digest ``:digest`` (deleted too), its owner, and one row per role
    the owner holds at ``:now`` (permissions and id; both NULL when none counts).

    Built once; only the parameters change from call to call.  Table columns,
    not ORM entities: the rows are named tuples (see :class:`KeyCredential`).
    """
    keys, users = _KEYS_TABLE, cast(Table, User.__table__)
    assignments, roles = cast(Table, UserRole.__table__), cast(Table, Role.__table__)
    held = and_(
        assignments.c.user_id == keys.c.user_id,
        *counting(bindparam("now", type_=UserRole.expires_at.type)),
    )
    return (
        select(
            # KeyCredential's fields ...
            keys.c.id,
            keys.c.user_id,
            keys.c.name,
            keys.c.key_prefix,
            keys.c.permissions,
            keys.c.expires_at,
            keys.c.usage_count,
            keys.c.last_used_at,
            users.c.username.label("owner_username"),
            users.c.is_superuser.label("owner_is_superuser"),
            # ... what decides whether it may be used ...
            keys.c.key_hash,
            keys.c.is_deleted,
            keys.c.revoked_at,
            users.c.is_deleted.label("owner_is_deleted"),
            users.c.is_active.label("owner_is_active"),
            # ... and one row per role its owner holds (NULL when none counts).
            roles.c.permissions.label("role_permissions"),
            roles.c.id.label("role_id"),
        )
        .select_from(keys.join(users, users.c.id == keys.c.user_id))
        # A nested join (assignment with its role), outer-joined as one on the rule.
        .outerjoin(assignments.join(roles, roles.c.id == assignments.c.role_id), held)
        .where(keys.c.key_hash == bindparam("digest", type_=keys.c.key_hash.type))
    )


class ApiKeyRepository(BaseRepository[ApiKey]):
    model = ApiKey

    def __init__(
        self, session: Session, *, pepper: str | None = None, actor: str | None = None
    ) -> None:
        super().__init__(session, actor=actor)
        self._pepper = pepper or None

    def _keys(self, include_deleted: bool = False) -> Select[ApiKey]:
        """``SELECT api_keys`` (live rows unless ``include_deleted``), typed."""
        return cast("Select[ApiKey]", self._select(include_deleted))

    # -- issuing ---------------------------------------------------------------
    def create_key(
        self,
        *,
        user: User,
        name: str,
        permissions: Mapping[str, bool],
        expires_at: datetime | None = None,
        description: str | None = None,
        now: datetime | None = None,
        known_free: bool = False,
    ) -> tuple[ApiKey, str]:
        """Issue a key for ``user``; return the row and the plaintext (shown once).

        ``known_free``: the caller read the owner's live keys in this
        transaction and none has this name (``vutf apply``'s plan), so it is
        not queried again one key at a time; the unique index still guards.
        """
        now = now or utcnow()
        if user.is_deleted:
            raise Conflict(f"user '{user.username}' is deleted; cannot issue an API key")
        if not user.is_active:
            raise Conflict(f"user '{user.username}' is inactive; cannot issue an API key")
        clean_name = _validate_name(name)
        granted = _normalize_permissions(permissions)
        if expires_at is not None and _require_aware(expires_at, "expiry") <= now:
            raise InvalidInput("expiry must be in the future")
        description = validation.validate_description(description)
        if not known_free and self.exists(user_id=user.id, name=clean_name):
            raise Conflict(
                f"user '{user.username}' already has an API key named '{clean_name}'",
                hint="choose another name, or revoke and delete the existing key",
            )
        plaintext = key_format.generate_api_key()
        key = self.create(
            user_id=user.id,
            name=clean_name,
            description=description,
            key_prefix=key_format.key_prefix(plaintext),
            key_hash=key_format.key_digest(plaintext, self._pepper),
            pepper_fingerprint=key_format.pepper_fingerprint(self._pepper),
            permissions=granted,
            expires_at=expires_at,
        )
        return key, plaintext

    # -- lookup ----------------------------------------------------------------
    def get_by_key(self, plaintext: str, *, include_deleted: bool = False) -> ApiKey | None:
        """The key row for a plaintext key, or None; a malformed key raises Denied."""
        key_format.ensure_well_formed(plaintext)  # before any query
        digest = key_format.key_digest(plaintext, self._pepper)
        stmt = self._keys(include_deleted).where(ApiKey.key_hash == digest)
        key = self.session.scalars(stmt).one_or_none()
        # The index found it by equality; the constant-time check is defence
        # in depth should a collation or driver ever compare loosely.
        if key is None or not key_format.digests_equal(key.key_hash, digest):
            return None
        return key

    def authenticate_key(
        self,
        plaintext: str,
        *,
        now: datetime | None = None,
        required_scope: str | None = None,
    ) -> KeyCredential:
        """The usable key for ``plaintext`` (with its owner's name), or Denied with the reason."""
        key, _ = self.authenticate_key_with_roles(plaintext, now=now, required_scope=required_scope)
        return key

    def authenticate_key_with_roles(
        self,
        plaintext: str,
        *,
        now: datetime | None = None,
        required_scope: str | None = None,
    ) -> tuple[KeyCredential, tuple[Mapping[str, Any] | None, ...]]:
        """:meth:`authenticate_key`, and the permissions of each role its owner holds at ``now``.

        One statement reads the key, its owner and the owner's counting role
        assignments (``roles.counting``: the rule
        :meth:`~vutf_cli.db.repositories.roles.AssignmentRepository.granting`
        applies), so a verification needs no second query for what its owner
        holds (``services.permissions.effective_key_scopes``).
        """
        now = now or utcnow()
        key_format.ensure_well_formed(plaintext)
        digest = key_format.key_digest(plaintext, self._pepper)
        rows = self.session.execute(_authenticate_statement(), {"digest": digest, "now": now}).all()
        if not rows:
            raise Denied("unknown API key")
        first = rows[0]
        if not key_format.digests_equal(first.key_hash, digest):
            raise Denied("unknown API key")
        if first.is_deleted:
            raise Denied("API key deleted")
        if first.revoked_at is not None:
            raise Denied("API key revoked")
        if first.expires_at is not None and first.expires_at <= now:
            raise Denied("API key expired")
        if first.owner_is_deleted:
            raise Denied("owner deleted")
        if not first.owner_is_active:
            raise Denied("owner inactive")
        key = KeyCredential(
            id=first.id,
            user_id=first.user_id,
            name=first.name,
            key_prefix=first.key_prefix,
            permissions=first.permissions,
            expires_at=first.expires_at,
            usage_count=first.usage_count,
            last_used_at=first.last_used_at,
            owner_username=first.owner_username,
            owner_is_superuser=first.owner_is_superuser,
        )
        if required_scope is not None and not self.has_permission(key, required_scope):
            raise Denied(f"API key lacks scope '{required_scope}'")
        # An owner without a counting role gives one row with no role (the outer join).
        return key, tuple(row.role_permissions for row in rows if row.role_id is not None)

    def get_by_prefix(self, prefix: str, *, include_deleted: bool = False) -> list[ApiKey]:
        """Keys whose display prefix starts with ``prefix`` (at most 12 characters)."""
        if len(prefix) > key_format.PREFIX_DISPLAY_LENGTH:
            raise InvalidInput(
                f"a key prefix has at most {key_format.PREFIX_DISPLAY_LENGTH} characters"
            )
        # autoescape: the '_' of "vutf_" is a LIKE wildcard otherwise.
        stmt = (
            self._keys(include_deleted)
            .where(ApiKey.key_prefix.startswith(prefix, autoescape=True))
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        return list(self.session.scalars(stmt))

    def resolve(self, ident: str, *, include_deleted: bool = False) -> ApiKey:
        """Find one key by id (UUID text) or by an unambiguous prefix."""
        ident = ident.strip()
        try:
            key_id = uuid.UUID(ident)
        except ValueError:
            pass
        else:
            key = self.get(key_id, include_deleted=include_deleted)
            if key is None:
                raise NotFound(f"no API key with id {key_id}")
            return key
        if not ident.startswith(key_format.KEY_PREFIX) or len(ident) < MIN_RESOLVE_PREFIX:
            raise InvalidInput(
                f"invalid API key reference {_show(ident)}: give the key id (a UUID) or at "
                f"least the first {MIN_RESOLVE_PREFIX} characters of the key "
                f"(starting with '{key_format.KEY_PREFIX}')"
            )
        if len(ident) > key_format.PREFIX_DISPLAY_LENGTH:
            # Longer than the stored prefix: only a whole key can be checked.
            if not key_format.is_well_formed(ident):
                raise InvalidInput(
                    f"invalid API key reference: a prefix has at most "
                    f"{key_format.PREFIX_DISPLAY_LENGTH} characters"
                )
            found = self.get_by_key(ident, include_deleted=include_deleted)
            if found is None:
                raise NotFound("no API key matches the given key")
            return found
        matches = self.get_by_prefix(ident, include_deleted=include_deleted)
        if not matches:
            raise NotFound(f"no API key with prefix {_show(ident)}")
        if len(matches) > 1:
            raise Conflict(
                f"ambiguous key prefix {_show(ident)}: matches {len(matches)} keys",
                hint="give more characters of the prefix, or the key id",
            )
        return matches[0]

    def list_for_user(self, user_id: uuid.UUID, *, include_deleted: bool = False) -> list[ApiKey]:
        stmt = (
            self._keys(include_deleted)
            .where(ApiKey.user_id == user_id)
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        return list(self.session.scalars(stmt))

    def state_condition(self, state: str, now: datetime) -> ColumnElement[bool]:
        """SQL condition for keys in ``state`` at ``now`` (deleted > revoked > expired > active)."""
        not_deleted = self._live_condition()
        not_revoked = ApiKey.revoked_at.is_(None)
        if state == "active":
            return and_(
                not_deleted,
                not_revoked,
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
        if state == "expired":
            return and_(not_deleted, not_revoked, ApiKey.expires_at <= now)
        if state == "revoked":
            return and_(not_deleted, ApiKey.revoked_at.is_not(None))
        if state == "deleted":
            return ApiKey.is_deleted == true()
        raise InvalidInput(f"unknown key state {_show(state)}; use one of {', '.join(KEY_STATES)}")

    # -- state changes -----------------------------------------------------------
    def revoke(self, key: ApiKey, *, now: datetime | None = None) -> bool:
        """Revoke ``key``; False (and no write at all) if it already was."""
        if key.revoked_at is not None:
            return False
        self.update(key, revoked_at=now or utcnow())
        return True

    def revoke_many(self, keys: Sequence[ApiKey], *, now: datetime | None = None) -> int:
        """Revoke each key; the number that were not revoked before."""
        now = now or utcnow()
        return sum(1 for key in keys if self.revoke(key, now=now))

    def _ensure_changeable(self, key: ApiKey) -> None:
        if key.is_deleted:
            raise Conflict(f"API key '{key.name}' ({key.key_prefix}) is deleted")
        if key.revoked_at is not None:
            raise Conflict(f"API key '{key.name}' ({key.key_prefix}) is revoked")

    def set_expiry(
        self, key: ApiKey, expires_at: datetime | None, *, now: datetime | None = None
    ) -> ApiKey:
        """Set a future expiry (or none); a key is ended now by revoking it."""
        now = now or utcnow()
        self._ensure_changeable(key)
        if expires_at is not None and _require_aware(expires_at, "expiry") <= now:
            raise InvalidInput("expiry must be in the future (to end a key now, expire it)")
        return self.update(key, expires_at=expires_at)

    def update_permissions(self, key: ApiKey, permissions: Mapping[str, bool]) -> ApiKey:
        self._ensure_changeable(key)
        granted = _normalize_permissions(permissions)
        if granted == key.permissions:
            return key
        return self.update(key, permissions=granted)

    @staticmethod
    def has_permission(key: ApiKey | KeyCredential, scope: str) -> bool:
        return validation.scope_grants(key.permissions or {}, scope)

    def record_usage(
        self, key_id: uuid.UUID, *, ip: str | None = None, now: datetime | None = None
    ) -> KeyUsage:
        """Count one use of the key ``key_id`` with a single atomic UPDATE; its new counters.

        The increment happens in SQL (``usage_count + 1``), so concurrent
        callers never lose a count.  Usage is not an edit: ``version``,
        ``updated_at`` and ``updated_by`` stay as they are.  A Core UPDATE:
        an ``ApiKey`` object this session loaded earlier keeps its old
        counters (use the ones returned).
        """
        now = now or utcnow()
        address = _validate_ip(ip)
        keys = _KEYS_TABLE
        stmt = (
            update(keys)
            .where(keys.c.id == key_id)
            .values(
                usage_count=keys.c.usage_count + 1,
                last_used_at=now,
                last_used_ip=address,
                # Named explicitly so the column's onupdate does not fire.
                updated_at=keys.c.updated_at,
            )
            .returning(keys.c.usage_count, keys.c.last_used_at, keys.c.last_used_ip)
        )
        found = self.session.execute(stmt).first()
        if found is None:
            raise NotFound(f"API key {key_id} no longer exists")
        return KeyUsage(*found)

    def list_expired(
        self,
        *,
        now: datetime | None = None,
        older_than: timedelta | None = None,
        include_revoked: bool = False,
    ) -> list[ApiKey]:
        """Keys (not deleted) expired, and optionally revoked, at least ``older_than`` ago."""
        cutoff = (now or utcnow()) - (older_than or timedelta(0))
        ended = ApiKey.expires_at <= cutoff
        if include_revoked:
            ended = or_(ended, ApiKey.revoked_at <= cutoff)
        stmt = self._keys(include_deleted=False).where(ended).order_by(ApiKey.created_at, ApiKey.id)
        return list(self.session.scalars(stmt))
