"""Lockout: failed password checks are counted, and too many lock the user for a while.

Decisions (docs/architecture.md §3.4; settings in :mod:`vutf_cli.settings`):

* A failure counts while it comes within ``VUTF_LOCKOUT_WINDOW`` seconds of
  the previous one (the counter restarts at 1 after a quiet window, as
  Active Directory's "reset account lockout counter after"); the failure
  that brings the count to ``VUTF_LOCKOUT_THRESHOLD`` locks the user for
  ``VUTF_LOCKOUT_DURATION`` seconds.  Defaults in line with OWASP's
  guidance: 5 failures, 15 minutes, 15 minutes.  A threshold of 0 never
  locks (failures are still counted and shown).
* What counts: a wrong password (an inactive user's too), and every attempt
  while locked, right password or not -- all are failed logins, and the
  count is what ``users show`` reports.  An attempt while locked does not
  extend the lock.  The first failure after a lock ran out starts a new count.
  Right password on an inactive user, unknown and deleted users: not counted.
* A successful login sets the count to 0.  ``vutf users unlock`` ends a lock
  and clears the count (an administrative change: audited, ``version``
  bumped); the counters themselves never bump ``version`` (see
  :class:`~vutf_cli.db.repositories.users.UserRepository`).
* Exactness: each attempt is settled by ONE guarded atomic UPDATE
  ("count it if locked now", "count it if not locked now", "clear it if not
  locked now"), the one the user's row as just read suggests first; when the
  guard fails because another process changed the lock in between, the other
  statement is tried.  No increment is lost and the reason recorded
  (``locked`` or ``wrong_password``) is what the row was at that instant, on
  both dialects.
* No oracle: an attempt on an unknown or deleted user issues the same kind of
  UPDATE against an id no user has (:func:`settle_nobody`), so the database
  work does not tell them from existing users either (argon2's is the same
  on every path: :meth:`~vutf_cli.security.passwords.Passwords.check`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from vutf_cli.db.types import utcnow
from vutf_cli.domain.user_view import UserView
from vutf_cli.services.audit_trail import mutate
from vutf_cli.services.user_changes import RESOURCE, append_change

if TYPE_CHECKING:
    from vutf_cli.db.database import Database
    from vutf_cli.db.uow import UnitOfWork
    from vutf_cli.domain.user_results import UserChange
    from vutf_cli.settings import Settings

__all__ = [
    "NOBODY",
    "UNLOCK_ACTION",
    "LockoutPolicy",
    "Settled",
    "settle",
    "settle_nobody",
    "unlock_user",
]

UNLOCK_ACTION: Final = "user.unlock"

# Guarded statements tried per attempt before it is refused as locked (the lock
# would have to flip between two statements every time to get there).
_TRIES: Final = 4
# An id no user has (ids are random version-4 UUIDs; this one is version 0).
NOBODY: Final = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    threshold: int
    window: timedelta
    duration: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> LockoutPolicy:
        return cls(
            threshold=settings.lockout_threshold,
            window=timedelta(seconds=settings.lockout_window),
            duration=timedelta(seconds=settings.lockout_duration),
        )


@dataclass(frozen=True, slots=True)
class Settled:
    """How an attempt on an existing, not deleted user ended.

    ``reason`` is None for a success; ``count`` and ``locked_until`` are the
    counters after this attempt (None when it changed nothing);
    ``locked_now`` is True for the failure that set the lock.
    """

    reason: str | None
    count: int | None = None
    locked_until: datetime | None = None
    locked_now: bool = False


def settle(
    uow: UnitOfWork,
    user_id: uuid.UUID,
    verdict: str | None,
    policy: LockoutPolicy,
    *,
    locked_until: datetime | None = None,
    now: datetime | None = None,
) -> Settled:
    """Count (or clear) the attempt whose password check gave ``verdict``.

    ``verdict``: None (right password, active user), ``"wrong_password"`` or
    ``"inactive"`` (right password, inactive user).  A user locked at this
    instant turns any of them into ``"locked"``.  ``locked_until`` is the
    user's as last read: only which statement is tried first depends on it.
    """
    users = uow.users
    now = utcnow() if now is None else now
    if locked_until is not None and locked_until > now:
        locked = users.count_locked_attempt(user_id, now)
        if locked is not None:
            return Settled("locked", count=locked.failures, locked_until=locked.locked_until)
    for _ in range(_TRIES):
        if verdict is None:
            if users.clear_failures(user_id, now):
                return Settled(None, count=0)
        elif verdict == "wrong_password":
            counted = users.count_failure(
                user_id,
                now,
                window_start=now - policy.window,
                threshold=policy.threshold,
                lock_end=now + policy.duration,
            )
            if counted is not None:
                return Settled(
                    verdict,
                    count=counted.failures,
                    locked_until=counted.locked_until,
                    locked_now=counted.locked_until is not None,
                )
        locked = users.count_locked_attempt(user_id, now)
        if locked is not None:
            return Settled("locked", count=locked.failures, locked_until=locked.locked_until)
        if verdict == "inactive":
            return Settled(verdict)
    return Settled("locked")


def unlock_user(db: Database, ident: str) -> UserChange:
    """End a live user's lock and clear their failure count (``vutf users unlock``).

    One ``user.unlock`` row naming the old values; a user with no lock in
    force and no failures counted is returned unchanged (``changed`` false,
    no row).  An expired lock is ended too.
    """
    from vutf_cli.domain.user_results import UserChange

    def change(uow: UnitOfWork) -> UserChange:
        user = uow.users.require(ident)
        now = utcnow()
        if user.failed_login_count == 0 and user.locked_until is None:
            return UserChange(UserView.from_row(user, now=now), changed=False)
        was_locked = user.locked_until is not None and user.locked_until > now
        changes = {
            "was_locked": was_locked,
            "failed_login_count": {"old": user.failed_login_count, "new": 0},
            "locked_until": {"old": user.locked_until, "new": None},
        }
        uow.users.update(user, failed_login_count=0, locked_until=None)
        append_change(uow, UNLOCK_ACTION, user, changes)
        fields = ("locked_until", "failed_login_count") if was_locked else ("failed_login_count",)
        return UserChange(UserView.from_row(user, now=now), changed=True, fields=fields)

    return mutate(db, change, action=UNLOCK_ACTION, resource_type=RESOURCE, resource_id=ident)


def settle_nobody(uow: UnitOfWork, policy: LockoutPolicy) -> None:
    """The database work of an attempt on no user: a failure counted against an id
    that no row has (it changes nothing), as an attempt on a user would."""
    now = utcnow()
    uow.users.count_failure(
        NOBODY,
        now,
        window_start=now - policy.window,
        threshold=policy.threshold,
        lock_end=now + policy.duration,
    )
