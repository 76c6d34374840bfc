"""Users' passwords, the work behind ``vutf users set-password`` and ``check-password``.

Decisions (the command help refers here):

* A password is hashed *before* a write transaction opens (argon2 is slow on
  purpose; a transaction, and on SQLite the database's write lock, should
  not wait for it).
* ``set_password`` acts on live users only and takes ``expected_version``
  like ``update`` (a mismatch is StaleVersion, exit 4); it writes one
  ``user.set_password`` audit row, which names the changed column and never
  holds the password or its hash.
* ``check_password`` reads only: it writes no audit row and does not record a
  login.  An unknown (or deleted) user costs one argon2 verify against a
  dummy hash, like a wrong password, and raises the same Denied message.
* ``generate_password`` makes the password of ``users create
  --generate-password``: letters and digits from ``secrets``.
"""

from __future__ import annotations

import string
from typing import Final

from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.services.audit_trail import mutate
from vutf_cli.services.user_changes import RESOURCE, append_change, check_version

__all__ = ["GENERATED_PASSWORD_LENGTH", "check_password", "generate_password", "set_password"]

GENERATED_PASSWORD_LENGTH: Final = 24
_PASSWORD_ALPHABET: Final = string.ascii_letters + string.digits


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


def check_password(db: Database, ident: str, password: str) -> UserView:
    """The user if ``password`` is theirs; Denied (same message, same cost) otherwise."""
    return db.run(
        lambda uow: UserView.from_row(uow.users.check_password(ident, password)), read_only=True
    )
