"""``vutf plan`` and ``vutf apply``: the use cases (``export-state`` is :mod:`.state`).

A :class:`Plan` is the changes (:mod:`.diff`) computed against an audit
head.  Applying re-reads the head *inside* its one transaction: when it
moved, something changed since the plan was made and nothing is applied
(Conflict, exit 4, naming the rows appended since); otherwise the changes
are computed again in that transaction (every change is audited, so the
same head means the same state) and each is written with the audit row the
plan showed (:mod:`.writes`, rows appended in one bulk INSERT by
:func:`~vutf_cli.services.audit_trail.append_many`).  All or nothing.

New users get a generated password, hashed before the transaction opens
(argon2 is slow; in a process pool for many users, as ``users import``
does), returned so the command can deliver it; or, with
``deliver_passwords`` false, a hash no password matches
(:meth:`~vutf_cli.security.passwords.Passwords.unusable_hash`, nothing
computed), which leaves the user without a usable password until ``vutf
users set-password``.  New keys' secrets are returned
(the command delivers them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict
from vutf_cli.services import audit_trail
from vutf_cli.services.declarative.change import differs_from_plan
from vutf_cli.services.declarative.diff import Change, changes_between
from vutf_cli.services.declarative.format import DesiredUser, Identity
from vutf_cli.services.declarative.writes import NewSecret, Writer, write_change
from vutf_cli.services.user_passwords import generate_password

__all__ = [
    "Applied",
    "Head",
    "NewSecret",
    "Plan",
    "apply_plan",
    "plan_identity",
]

Head = tuple[int, str] | None

# Rows named in the moved-head refusal before "and N more".
_NAMED_ROWS: Final = 5


@dataclass(frozen=True, slots=True)
class Plan:
    identity: Identity
    prune: bool
    head: Head
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Applied:
    changes: tuple[Change, ...]
    seqs: tuple[int, ...]
    secrets: tuple[NewSecret, ...]


def plan_identity(db: Database, identity: Identity, *, prune: bool) -> Plan:
    """The changes applying ``identity`` would make, and the audit head they were computed at."""

    def read(uow: UnitOfWork) -> Plan:
        changes = changes_between(uow, identity, prune=prune, now=utcnow())
        return Plan(identity, prune, uow.audit.head(), tuple(changes))

    return db.run(read, read_only=True)


def apply_plan(
    db: Database,
    plan: Plan,
    *,
    deliver_passwords: bool,
    hash_progress: Any = None,
) -> Applied:
    """Apply ``plan`` in one transaction if the audit head is still the plan's (else Conflict)."""
    from vutf_cli.services.user_import import hash_passwords

    creating = [c.target for c in plan.changes if c.action == "user.create"]
    new_users = [user for user in creating if isinstance(user, DesiredUser)]
    passwords = db.passwords
    clear: list[str] = []
    if deliver_passwords:
        clear = [generate_password(passwords.min_length) for _ in new_users]
        hashes = hash_passwords(
            clear,
            profile=passwords.profile,
            min_length=passwords.min_length,
            progress=hash_progress,
        )
    else:
        hashes = [passwords.unusable_hash() for _ in new_users]
    hash_of = {
        user.username.lower(): digest for user, digest in zip(new_users, hashes, strict=True)
    }

    def write(uow: UnitOfWork) -> Applied:
        _check_head(uow, plan.head)
        now = utcnow()
        changes = changes_between(uow, plan.identity, prune=plan.prune, now=now)
        if tuple(changes) != plan.changes:  # the same head must mean the same state
            raise differs_from_plan()
        writer = Writer(uow, now, hash_of)
        with uow.flushing_once():
            written = [secret for change in changes if (secret := write_change(writer, change))]
        seqs = writer.append_rows()
        return Applied(tuple(changes), tuple(seqs), tuple(written))

    applied = audit_trail.mutate(db, write, action="identity.apply", resource_type="identity")
    if not deliver_passwords:
        return Applied(
            applied.changes,
            applied.seqs,
            tuple(s for s in applied.secrets if s.kind != "password"),
        )
    by_user = dict(zip((u.username.lower() for u in new_users), clear, strict=True))
    secrets_out = tuple(
        NewSecret("password", s.owner, s.name, by_user[s.owner.lower()])
        if s.kind == "password"
        else s
        for s in applied.secrets
    )
    return Applied(applied.changes, applied.seqs, secrets_out)


def _check_head(uow: UnitOfWork, planned: Head) -> None:
    current = uow.audit.head()
    if current == planned:
        return
    since = 0 if planned is None else planned[0]
    rows = list(
        uow.session.scalars(
            select(AuditLog).where(AuditLog.seq > since).order_by(AuditLog.seq).limit(_NAMED_ROWS)
        )
    )
    named = ", ".join(f"#{row.seq} {row.action} {row.resource_type}" for row in rows)
    moved = 0 if current is None else current[0] - since
    more = f" and {moved - len(rows)} more" if moved > len(rows) else ""
    raise Conflict(
        f"the audit log moved since the plan was made (head #{since} -> "
        f"#{0 if current is None else current[0]}: {named or 'rewritten'}{more}); "
        "nothing was applied",
        hint="review a new plan: vutf plan -f FILE --out PLAN",
    )
