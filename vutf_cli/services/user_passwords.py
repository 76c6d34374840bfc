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
  (also a deleted one), the caller's ``ip_address``/``user_agent`` when given,
  and on failure ``changes = {"reason": …}``: ``unknown_user`` (no row; the
  identifier as typed is kept in ``changes``), ``deleted`` (whatever the
  password), ``wrong_password``, or ``inactive`` (right password, deactivated
  user).  A refused attempt raises Denied (exit 5) with the one message of a
  wrong password, after its row is committed.  Every attempt costs exactly
  one argon2 verify at the configured parameters (a dummy hash when there is
  no stored one), outside any transaction, so timing tells nothing either.
* ``generate_password`` makes the password of ``users create
  --generate-password``: letters and digits from ``secrets``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from vutf_cli.db.database import Database
from vutf_cli.db.repositories.users import INVALID_CREDENTIALS
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.errors import Denied
from vutf_cli.services import audit_trail
from vutf_cli.services.audit_trail import mutate
from vutf_cli.services.user_changes import RESOURCE, append_change, check_version

if TYPE_CHECKING:
    import uuid

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
_IDENTIFIER_KEPT: Final = 320  # the longest email address


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
    subject = db.run(
        lambda uow: _Subject.of(uow.users.get_by_identifier(ident, include_deleted=True)),
        read_only=True,
    )
    passwords = db.passwords
    if subject is None:
        passwords.verify_dummy(password)
        matches = False
    else:
        matches = passwords.verify(subject.password_hash, password)

    def record(uow: UnitOfWork) -> UserView | str:
        # Re-read: the row may have changed during the verify (deactivated,
        # deleted, new password); the row written says what was decided now.
        user = None if subject is None else uow.users.get(subject.id, include_deleted=True)
        reason = _refusal(user, subject, matches)
        audit_trail.append(
            uow,
            action=LOGIN_ACTION,
            resource_type=RESOURCE,
            resource_id=None if user is None else str(user.id),
            user_id=None if user is None else user.id,
            status="success" if reason is None else "failure",
            changes=_changes(reason, ident, user),
            error_message=None if reason is None else f"{Denied.code}: {INVALID_CREDENTIALS}",
            ip_address=ip_address,
            user_agent=user_agent,
        )
        if user is None or reason is not None:
            return reason or "unknown_user"
        return UserView.from_row(user)

    outcome = db.run(record)
    if isinstance(outcome, str):
        raise Denied(INVALID_CREDENTIALS)
    return outcome


def _refusal(user: User | None, subject: _Subject | None, matches: bool) -> str | None:
    """The reason an attempt is refused (None: it succeeds), for the audit row only."""
    if user is None or subject is None:
        return "unknown_user"
    if user.is_deleted:
        return "deleted"
    if not matches or user.password_hash != subject.password_hash:
        return "wrong_password"
    if not user.is_active:
        return "inactive"
    return None


def _changes(reason: str | None, ident: str, user: User | None) -> dict[str, str] | None:
    if reason is None:
        return None
    if user is None:
        # No user id to name the subject by: keep what was typed (bounded: an
        # attacker chooses it, and the log keeps it forever).
        return {"reason": reason, "identifier": ident[:_IDENTIFIER_KEPT]}
    return {"reason": reason}
