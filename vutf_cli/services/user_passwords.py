"""Users' passwords, the work behind ``vutf users set-password`` and ``check-password``.

Decisions (the command help refers here):

* A password is hashed *before* a write transaction opens (argon2 is slow on
  purpose; a transaction, and on SQLite the database's write lock, should
  not wait for it).
* ``set_password`` acts on live users only and takes ``expected_version``
  like ``update`` (a mismatch is StaleVersion, exit 4); it writes one
  ``user.set_password`` audit row, which names the changed column and never
  holds the password or its hash.
* ``check_password`` is an authentication attempt, and every attempt appends
  exactly one ``user.login`` audit row (docs/architecture.md §3.2): status
  ``success`` or ``failure``, ``user_id`` whenever the subject's row exists
  (also a deleted one), the caller's ``ip_address``/``user_agent`` when given
  (fitted to their columns, never refused: ``audit_trail.fit_text``),
  and on failure ``changes = {"reason": …}``: ``unknown_user`` (no row; the
  identifier as typed is kept in ``changes``), ``deleted`` (whatever the
  password), ``locked`` (whatever the password), ``wrong_password``, or
  ``inactive`` (right password, deactivated user); a counted failure adds
  ``failed_login_count`` (and ``locked_until`` when it set the lock).  A
  refused attempt raises Denied (exit 5) with the one message of a wrong
  password, after its row is committed.
* Constant cost: every attempt computes exactly one argon2 hash at the
  configured parameters (``Passwords.check``: the stored hash, a dummy one
  for an unknown user, or a fresh hash when the stored one has other
  parameters), outside any transaction, whatever the outcome -- a locked
  user's password is checked like any other -- so timing tells nothing.
* Rehash on login: a successful check of a hash whose parameters differ
  from the configured profile stores the fresh hash (only if the stored
  hash is still the one checked: a password set meanwhile wins), and the
  success row says ``{"rehashed": true}``.  Neither that nor the lockout
  counters (:mod:`vutf_cli.services.lockout`) bump the user's ``version``.
* ``generate_password`` makes the password of ``users create
  --generate-password``: letters and digits from ``secrets``.
"""

from __future__ import annotations

import string
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from vutf_cli.db.database import Database
from vutf_cli.db.repositories.users import INVALID_CREDENTIALS
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.domain.validation import could_be_identity
from vutf_cli.errors import Denied
from vutf_cli.services import audit_trail
from vutf_cli.services.audit_trail import mutate
from vutf_cli.services.lockout import NOBODY, LockoutPolicy, Settled, settle, settle_nobody
from vutf_cli.services.user_changes import RESOURCE, append_change, check_version

if TYPE_CHECKING:
    from typing import Any

    from vutf_cli.db.models import User

__all__ = [
    "GENERATED_PASSWORD_LENGTH",
    "LOGIN_ACTION",
    "check_password",
    "generate_password",
    "set_password",
]

GENERATED_PASSWORD_LENGTH: Final = 24
_PASSWORD_ALPHABET: Final = string.ascii_letters + string.digits
LOGIN_ACTION: Final = "user.login"


def generate_password(min_length: int) -> str:
    """A random password of letters and digits from ``secrets``: 24 characters, or more
    when the configured minimum asks for more."""
    import secrets  # here: listing users never needs it (nor hmac and OpenSSL)

    length = max(GENERATED_PASSWORD_LENGTH, min_length)
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def set_password(
    db: Database, ident: str, password: str, *, expected_version: int | None = None
) -> UserView:
    """Replace a live user's password (the policy applies)."""
    passwords = db.passwords
    passwords.check_strength(password)
    password_hash = passwords.hash(password)

    def change(uow: UnitOfWork) -> UserView:
        user = uow.users.require(ident)
        check_version(user, expected_version)
        uow.users.update(user, password_hash=password_hash)
        append_change(uow, "user.set_password", user, {"changed": ["password_hash"]})
        return UserView.from_row(user)

    return mutate(db, change, action="user.set_password", resource_type=RESOURCE, resource_id=ident)


@dataclass(frozen=True, slots=True)
class _Subject:
    """What the attempt needs of the user's row, read before the (slow) verify."""

    id: uuid.UUID
    password_hash: str

    @classmethod
    def of(cls, user: User | None) -> _Subject | None:
        if user is None:
            return None
        return cls(user.id, user.password_hash)


def check_password(
    db: Database,
    ident: str,
    password: str,
    *,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> UserView:
    """The user if ``password`` is theirs and they may log in; Denied (same message,
    same cost) otherwise.  Either way one ``user.login`` audit row is committed."""
    # A name no user can hold (a NUL, a lone surrogate: the database could
    # not even look it up) is an unknown user; the attempt is still recorded.
    subject = (
        db.run(
            lambda uow: _Subject.of(uow.users.get_by_identifier(ident, include_deleted=True)),
            read_only=True,
        )
        if could_be_identity(ident)
        else None
    )
    # The one argon2 computation at the configured parameters, whatever follows.
    checked = db.passwords.check(None if subject is None else subject.password_hash, password)
    policy = LockoutPolicy.from_settings(db.settings)

    def record(uow: UnitOfWork) -> UserView | str:
        # Re-read: the row may have changed during the verify (deactivated,
        # deleted, new password); the row written says what was decided now.
        # (An unknown user's id is looked up too: the same statements on every path.)
        user = uow.users.get(NOBODY if subject is None else subject.id, include_deleted=True)
        settled = _settle(uow, user, subject, checked.matches, policy)
        rehashed = (
            settled.reason is None
            and user is not None
            and subject is not None
            and checked.new_hash is not None
            and uow.users.replace_password_hash(user.id, subject.password_hash, checked.new_hash)
        )
        audit_trail.append(
            uow,
            action=LOGIN_ACTION,
            resource_type=RESOURCE,
            resource_id=None if user is None else str(user.id),
            user_id=None if user is None else user.id,
            status="success" if settled.reason is None else "failure",
            changes=_changes(settled, ident, user, rehashed=bool(rehashed)),
            error_message=(
                None if settled.reason is None else f"{Denied.code}: {INVALID_CREDENTIALS}"
            ),
            ip_address=ip_address,
            user_agent=user_agent,
        )
        if user is None or settled.reason is not None:
            return settled.reason or "unknown_user"
        uow.session.refresh(user)  # counters (and hash) were changed by UPDATE statements
        return UserView.from_row(user)

    outcome = db.run(record)
    if isinstance(outcome, str):
        raise Denied(INVALID_CREDENTIALS)
    return outcome


def _settle(
    uow: UnitOfWork,
    user: User | None,
    subject: _Subject | None,
    matches: bool,
    policy: LockoutPolicy,
) -> Settled:
    """How the attempt ends: its reason (None: it succeeds) and the lockout counters."""
    if user is None or subject is None:
        settle_nobody(uow, policy)
        return Settled("unknown_user")
    if user.is_deleted:
        settle_nobody(uow, policy)
        return Settled("deleted")
    if not matches or user.password_hash != subject.password_hash:
        verdict: str | None = "wrong_password"
    elif not user.is_active:
        verdict = "inactive"
    else:
        verdict = None
    return settle(uow, user.id, verdict, policy, locked_until=user.locked_until)


def _changes(
    settled: Settled, ident: str, user: User | None, *, rehashed: bool
) -> dict[str, Any] | None:
    if settled.reason is None:
        return {"rehashed": True} if rehashed else None
    if user is None:
        # No user id to name the subject by: keep what was typed (bounded: an
        # attacker chooses it, and the log keeps it forever).
        return {"reason": settled.reason, "identifier": audit_trail.kept_identifier(ident)}
    changes: dict[str, Any] = {"reason": settled.reason}
    if settled.count is not None:
        changes["failed_login_count"] = settled.count
    if settled.locked_now:
        changes["locked_until"] = settled.locked_until
    return changes
