"""The password check of a login costs the same on every path, and rehashes on success.

Issue 11 item 7 and issue 13 item 4, on real SQLite and PostgreSQL: every
path of ``services.user_passwords.check_password`` -- unknown user, wrong
password, right password, inactive, deleted, locked, a stored hash with
weaker or other parameters, an unreadable stored hash -- computes exactly one
argon2 hash at the configured parameters.  They are counted through the
``observer`` of :class:`~vutf_cli.security.passwords.Passwords`, the one seam
every argon2 computation of vutf passes.  (Their timing is measured by the
benchmark runner: ``tests/benchmarks/auth_timing.py``.)  A successful check of
a hash with other parameters stores a fresh one and says so in its audit row.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import Parameters, PasswordHasher

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Denied
from vutf_cli.security.passwords import PROFILES, Passwords
from vutf_cli.services import user_passwords
from vutf_cli.settings import Settings

PASSWORD = "correct horse battery staple"
WRONG = "definitely not the right one"
# The same passphrase in full-width forms (U+FF41..., ideographic space): NFKC maps it back.
FULLWIDTH = "".join("\u3000" if ch == " " else chr(ord(ch) + 0xFEE0) for ch in PASSWORD)
TEST_PROFILE = PROFILES["test"]
# Weaker than the test profile in memory (a legacy hash, as an import may bring).
WEAK = dataclasses.replace(TEST_PROFILE, memory_cost=1024)


class Computations:
    """The observer: every argon2 computation, with the parameters it ran at."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Parameters]] = []

    def __call__(self, what: str, parameters: Parameters) -> None:
        self.seen.append((what, parameters))

    def at_profile(self) -> int:
        return sum(parameters == TEST_PROFILE for _, parameters in self.seen)

    def clear(self) -> None:
        self.seen.clear()


@pytest.fixture
def computations() -> Computations:
    return Computations()


@pytest.fixture
def counted_db(settings: Settings, computations: Computations) -> Iterator[Database]:
    database = Database(settings, passwords=Passwords("test", observer=computations))
    try:
        yield database
    finally:
        database.dispose()


def hash_with(parameters: Parameters, password: str = PASSWORD) -> str:
    return PasswordHasher.from_parameters(parameters).hash(password)


def make_user(db: Database, username: str, password_hash: str, **values: Any) -> uuid.UUID:
    """A user whose stored hash is ``password_hash`` as it is (whatever it is: an
    import with --allow-weak-hashes, an older profile, a hand edit)."""

    def create(uow: UnitOfWork) -> uuid.UUID:
        user = uow.users.create_user(
            username=username,
            email=f"{username}@example.org",
            password_hash=Passwords("test").hash(PASSWORD),
            **values,
        )
        uow.session.flush()
        uow.session.execute(
            sa.update(User.__table__)
            .where(User.__table__.c.id == user.id)
            .values(password_hash=password_hash)
        )
        return user.id

    return db.run(create)


def lock(db: Database, username: str) -> None:
    db.run(
        lambda uow: uow.session.execute(
            sa.update(User.__table__)
            .where(User.__table__.c.username == username)
            .values(locked_until=datetime(2999, 1, 1, tzinfo=UTC))
        )
    )


def stored(db: Database, username: str) -> dict[str, Any]:
    def read(uow: UnitOfWork) -> dict[str, Any]:
        row = uow.session.execute(
            sa.select(User.password_hash, User.version, User.updated_at).where(
                User.username == username
            )
        ).one()
        return dict(row._mapping)

    return db.run(read, read_only=True)


def last_login_changes(db: Database) -> dict[str, Any] | None:
    def read(uow: UnitOfWork) -> dict[str, Any] | None:
        return uow.session.scalars(
            sa.select(AuditLog.changes)
            .where(AuditLog.action == "user.login")
            .order_by(AuditLog.seq.desc())
        ).first()

    return db.run(read, read_only=True)


def attempt(db: Database, username: str, password: str) -> str | None:
    """None if the check passed, else the reason its audit row gives."""
    message = None
    try:
        user_passwords.check_password(db, username, password)
    except Denied as refused:
        message = refused.message
    if message is None:
        return None
    assert message == "invalid username or password"
    changes = last_login_changes(db)
    assert changes is not None
    return str(changes["reason"])


def test_every_path_computes_exactly_one_hash_at_the_configured_parameters(
    counted_db: Database, computations: Computations
) -> None:
    db = counted_db
    own = Passwords("test").hash(PASSWORD)
    make_user(db, "plain", own)
    make_user(db, "weak", hash_with(WEAK))
    make_user(db, "stronger", hash_with(dataclasses.replace(TEST_PROFILE, time_cost=2)))
    make_user(db, "garbled", "$argon2id$v=19$m=8192,t=1,p=1$!!!!$!!!!")
    make_user(db, "idle", own, is_active=False)
    make_user(db, "gone", own)
    make_user(db, "shut", own)
    db.run(lambda uow: uow.users.delete(uow.users.require("gone")))
    lock(db, "shut")

    cases = [
        ("nobody", PASSWORD, "unknown_user"),
        ("plain", WRONG, "wrong_password"),
        ("plain", PASSWORD, None),
        ("weak", WRONG, "wrong_password"),
        ("stronger", WRONG, "wrong_password"),
        ("garbled", PASSWORD, "wrong_password"),
        ("idle", PASSWORD, "inactive"),
        ("gone", PASSWORD, "deleted"),
        ("shut", PASSWORD, "locked"),
        ("shut", WRONG, "locked"),
        ("weak", PASSWORD, None),  # rehashed now ...
        ("weak", PASSWORD, None),  # ... so this one verifies the profile's hash alone
        ("nobody", "bad\ud800surrogate password", "unknown_user"),
        ("plain", "bad\ud800surrogate password", "wrong_password"),
    ]
    for username, password, reason in cases:
        computations.clear()
        assert attempt(db, username, password) == reason, username
        assert computations.at_profile() == 1, (username, reason, computations.seen)
        # Besides it, only a stored hash with other parameters is verified (at its own cost).
        others = [parameters for _, parameters in computations.seen if parameters != TEST_PROFILE]
        assert len(others) <= (username in ("weak", "stronger", "garbled")), username
    # The unknown user's dummy hash and the stored hashes: the profile's parameters.
    computations.clear()
    attempt(db, "nobody", WRONG)
    assert computations.seen == [("verify", TEST_PROFILE)]


def test_a_hash_weaker_in_any_respect_is_rehashed_on_a_successful_check(
    db: Database,
) -> None:
    for name, parameters in (
        ("weak", WEAK),
        ("weaker-salt", dataclasses.replace(TEST_PROFILE, salt_len=8, time_cost=2)),
    ):
        old = hash_with(parameters)
        make_user(db, name, old)
        before = stored(db, name)
        # A failed check changes nothing.
        assert attempt(db, name, WRONG) == "wrong_password"
        assert stored(db, name)["password_hash"] == old
        assert attempt(db, name, FULLWIDTH) is None  # NFKC: the same password
        assert last_login_changes(db) == {"rehashed": True}
        after = stored(db, name)
        assert after["password_hash"] != old
        assert not db.passwords.needs_rehash(after["password_hash"])
        assert db.passwords.verify(after["password_hash"], PASSWORD)
        # Not an administrative change: version and updated_at stay.
        assert (after["version"], after["updated_at"]) == (before["version"], before["updated_at"])
        # Up to date now: the next success records no rehash.
        assert attempt(db, name, PASSWORD) is None
        assert last_login_changes(db) is None
        assert stored(db, name)["password_hash"] == after["password_hash"]


def test_a_stronger_hash_within_the_bounds_is_never_replaced_by_the_profiles(
    db: Database,
) -> None:
    """Review finding 7: rehash on login only upgrades (a weaker profile never downgrades)."""
    for name, parameters in (
        ("more-passes", dataclasses.replace(TEST_PROFILE, time_cost=2)),
        ("more-memory", dataclasses.replace(TEST_PROFILE, memory_cost=4 * 8192, parallelism=2)),
        ("beyond-bound", dataclasses.replace(TEST_PROFILE, time_cost=5)),  # costlier only
    ):
        old = hash_with(parameters)
        make_user(db, name, old)
        for _ in range(2):
            assert attempt(db, name, PASSWORD) is None
            assert last_login_changes(db) is None  # no {"rehashed": true}
            assert stored(db, name)["password_hash"] == old
    # The production hash checked by a store on the test profile stays production's.
    production = Passwords("production").hash(PASSWORD)
    make_user(db, "prod", production)
    assert attempt(db, "prod", PASSWORD) is None
    assert stored(db, "prod")["password_hash"] == production


def test_a_password_set_during_the_check_wins_over_the_rehash(db: Database) -> None:
    old = hash_with(WEAK)
    user_id = make_user(db, "race", old)
    new = Passwords("test").hash("a brand new passphrase here")
    # The rehash stores its hash only over the hash that was checked.
    assert (
        db.run(lambda uow: uow.users.replace_password_hash(user_id, "something else", new)) is False
    )
    assert stored(db, "race")["password_hash"] == old
    assert db.run(lambda uow: uow.users.replace_password_hash(user_id, old, new)) is True
    assert stored(db, "race")["password_hash"] == new


def test_the_same_answer_for_every_refusal_and_compatibility_forms_match(db: Database) -> None:
    own = Passwords("test").hash(PASSWORD)
    make_user(db, "kate", own)
    make_user(db, "liam", Passwords("test").hash(FULLWIDTH))
    assert attempt(db, "kate", FULLWIDTH) is None
    assert attempt(db, "liam", PASSWORD) is None
    assert attempt(db, "KATE@example.org", PASSWORD) is None
    for username, password in (("kate", WRONG), ("nobody", PASSWORD)):
        with pytest.raises(Denied) as refused:
            user_passwords.check_password(db, username, password)
        assert (refused.value.message, refused.value.exit_code) == (
            "invalid username or password",
            5,
        )


def test_what_is_weaker_than_the_profile() -> None:
    passwords = Passwords("test")  # m=8192, t=1, p=1, 16-byte salt, 32-byte hash
    assert passwords.weakness(passwords.hash(PASSWORD)) is None
    assert passwords.weakness(hash_with(WEAK)) == "m 1024 < 8192"
    # More lanes, more passes or more memory are not weaker.
    for stronger in (
        dataclasses.replace(TEST_PROFILE, parallelism=4, memory_cost=32768),
        dataclasses.replace(TEST_PROFILE, time_cost=3),
    ):
        assert passwords.weakness(hash_with(stronger)) is None
    short = dataclasses.replace(TEST_PROFILE, salt_len=8, hash_len=16)
    assert passwords.weakness(hash_with(short)) == "salt bytes 8 < 16, hash bytes 16 < 32"
    assert Passwords("production").weakness(passwords.hash(PASSWORD)) == "m 8192 < 65536, t 1 < 3"
    assert passwords.weakness("not a hash") == "it cannot be read"
    # Beyond COST_BOUND times the profile's memory or passes: outside the bounds too.
    costly = dataclasses.replace(TEST_PROFILE, memory_cost=4 * 8192 + 8, time_cost=5)
    assert passwords.weakness(hash_with(costly)) == "m 32776 > 4 \u00d7 8192, t 5 > 4 \u00d7 1"
