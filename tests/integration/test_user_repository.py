"""UserRepository against real SQLite and PostgreSQL databases (both, via ``db``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy.exc import IntegrityError

from vutf_cli.db.database import Database
from vutf_cli.db.models import User
from vutf_cli.db.repositories.users import escape_like
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, InvalidInput, NotFound
from vutf_cli.security.passwords import Passwords

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return Passwords("test").hash(PASSWORD)


def add_user(uow: UnitOfWork, username: str, password_hash: str, **values: Any) -> User:
    values.setdefault("email", f"{username.lower()}@example.com")
    return uow.users.create_user(username=username, password_hash=password_hash, **values)


# -- lookups -----------------------------------------------------------------------


def test_lookups_are_case_insensitive(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        user = add_user(uow, "Alice", password_hash, email="Alice@Example.COM")
        assert user.email == "alice@example.com"  # stored lower-case
        assert user.username == "Alice"  # stored as given
        uow.commit()
    with db.unit_of_work(read_only=True) as uow:
        users = uow.users
        for found in (
            users.get_by_username("alice"),
            users.get_by_username("ALICE"),
            users.get_by_email("ALICE@example.com"),
            users.get_by_email("  alice@EXAMPLE.com "),
            users.get_by_identifier("aLiCe"),
            users.get_by_identifier("Alice@Example.com"),
            users.get_by_identifier(str(user.id)),
            users.get_by_identifier(str(user.id).upper()),
            users.require("ALICE"),
        ):
            assert found is not None
            assert found.id == user.id
        assert users.get_by_username("alic") is None
        assert users.get_by_email("alice@example.org") is None
        assert users.get_by_identifier(str(uuid.uuid4())) is None
        with pytest.raises(NotFound, match=r"^user 'nobody' not found$"):
            users.require("nobody")


def test_identifier_that_looks_like_a_uuid_is_also_a_username(
    db: Database, password_hash: str
) -> None:
    uuid_like = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        user = add_user(uow, uuid_like, password_hash, email="uuidish@example.com")
        assert uow.users.require(uuid_like).id == user.id


def test_search_is_case_insensitive_and_escapes_like_wildcards(
    db: Database, password_hash: str
) -> None:
    with db.unit_of_work() as uow:
        add_user(uow, "abc", password_hash, full_name="Plain ABC")
        add_user(uow, "a_c", password_hash, full_name="Under Score")
        add_user(uow, "axc", password_hash, full_name="100% sure")
        add_user(uow, "ayc", password_hash, full_name="1000 sure")
        add_user(uow, "azc", password_hash, full_name="back\\slash")
        add_user(uow, "bob", password_hash, email="Bob.Smith@Corp.example")
        uow.commit()
    with db.unit_of_work(read_only=True) as uow:

        def found(text: str) -> list[str]:
            where = [uow.users.search_condition(text)]
            return sorted(u.username for u in uow.users.keyset_rows(where=where, limit=100).items)

        assert found("a_c") == ["a_c"]  # '_' is not "any character"
        assert found("_") == ["a_c"]
        assert found("%") == ["axc"]  # '%' is not "anything"
        assert found("0% s") == ["axc"]
        assert found("\\") == ["azc"]  # the escape character itself
        assert found("k\\s") == ["azc"]
        assert found("ABC") == ["abc"]  # username and full name, any case
        assert found("smith@corp") == ["bob"]  # email
        assert found("sure") == ["axc", "ayc"]
        assert found("") == ["a_c", "abc", "axc", "ayc", "azc", "bob"]
        # The same condition combines with keyset paging.
        page = uow.users.keyset(where=[uow.users.search_condition("SURE")], limit=1)
        assert page.next_cursor is not None
        assert escape_like("50%_\\") == "50\\%\\_\\\\"


def test_search_skips_deleted_users_unless_asked(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        gone = add_user(uow, "ghost", password_hash)
        uow.users.delete(gone)
        where = [uow.users.search_condition("ghost")]
        assert uow.users.keyset_rows(where=where).items == []
        everyone = uow.users.keyset_rows(where=where, include_deleted=True).items
        assert [u.username for u in everyone] == ["ghost"]


# -- create ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"username": "ab"}, "invalid username"),
        ({"username": "bad name"}, "invalid username"),
        ({"username": "ünïcode"}, "invalid username"),
        ({"email": "not-an-email"}, "invalid email address"),
        ({"email": "two@@example.com"}, "invalid email address"),
        ({"full_name": "Evil\x1b[31m"}, "invalid full name"),
        ({"password": "short"}, "password too short"),
        ({"password": PASSWORD, "password_hash": "$argon2id$"}, "exactly one of"),
        ({"password": None}, "exactly one of"),
        ({"password": None, "password_hash": "$2b$12$abcdefghijklmnopqrstuv"}, "argon2id PHC"),
        ({"password": None, "password_hash": "plain text"}, "argon2id PHC"),
    ],
)
def test_create_user_validates(db: Database, values: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "username": "valid_name",
        "email": "valid@example.com",
        "password": PASSWORD,
        **values,
    }
    with db.unit_of_work() as uow:
        with pytest.raises(InvalidInput, match=message):
            uow.users.create_user(**arguments)
        assert uow.users.count(include_deleted=True) == 0


def test_create_user_refuses_argon2i_hashes(db: Database) -> None:
    argon2i = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.I)
    with db.unit_of_work() as uow, pytest.raises(InvalidInput, match="argon2id PHC"):
        uow.users.create_user(
            username="legacy", email="legacy@example.com", password_hash=argon2i.hash(PASSWORD)
        )


def test_create_user_hashes_the_password(db: Database) -> None:
    with db.unit_of_work() as uow:
        user = uow.users.create_user(
            username="hashed",
            email="hashed@example.com",
            password=PASSWORD,
            full_name="",
            is_verified=True,
            is_superuser=True,
        )
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert uow.passwords.verify(user.password_hash, PASSWORD)
        assert user.full_name is None
        assert (user.is_verified, user.is_superuser, user.is_active) == (True, True, True)
        assert user.verified_at is not None


def test_duplicates_in_another_case_conflict(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        add_user(uow, "Carol", password_hash, email="carol@example.com")
        uow.commit()
    with db.unit_of_work() as uow:
        users = uow.users
        with pytest.raises(Conflict, match=r"^a user with that username already exists$"):
            add_user(uow, "CAROL", password_hash, email="other@example.com")
        with pytest.raises(Conflict, match=r"^a user with that email already exists$"):
            add_user(uow, "carol2", password_hash, email="Carol@Example.com")
        assert users.count() == 1


def test_deleted_name_can_be_registered_again(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        old = add_user(uow, "dora", password_hash, full_name="Old Dora")
        uow.users.delete(old)
        uow.commit()
    with db.unit_of_work() as uow:
        assert uow.users.get_by_username("DORA") is None
        new = add_user(uow, "Dora", password_hash, full_name="New Dora")
        uow.commit()
    with db.unit_of_work() as uow:
        users = uow.users
        assert users.get_by_username("dora").id == new.id  # type: ignore[union-attr]
        assert users.get_by_username("dora", include_deleted=True).id == new.id  # type: ignore[union-attr]
        assert users.get_by_email("dora@example.com", include_deleted=True).id == new.id  # type: ignore[union-attr]
        # The old row cannot come back while the name is taken again.
        stale = users.get_or_raise(old.id, include_deleted=True)
        with pytest.raises(Conflict, match="username already exists"):
            users.restore(stale)
        # With every row deleted, the most recently deleted one is found.
        users.delete(users.get_or_raise(new.id))
        assert users.get_by_username("dora") is None
        latest = users.get_by_username("DORA", include_deleted=True)
        assert latest is not None
        assert latest.id == new.id


def test_update_keeps_names_valid_and_unique(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        erin = add_user(uow, "erin", password_hash)
        add_user(uow, "fay", password_hash)
        users = uow.users
        users.update(erin, username="Erin", email=" ERIN@Example.COM ")  # own name, new case
        assert (erin.username, erin.email) == ("Erin", "erin@example.com")
        with pytest.raises(Conflict, match="username already exists"):
            users.update(erin, username="FAY")
        with pytest.raises(Conflict, match="email already exists"):
            users.update(erin, email="fay@example.com")
        with pytest.raises(InvalidInput, match="invalid username"):
            users.update(erin, username="x")
        with pytest.raises(InvalidInput, match="argon2id PHC"):
            users.update(erin, password_hash="md5:abc")
        assert erin.username == "Erin"


# -- the password check ----------------------------------------------------------------------


def test_set_active_and_verify(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        user = add_user(uow, "nora", password_hash)
        uow.users.set_active(user, False)
        assert (user.is_active, user.version) == (False, 2)
        uow.users.set_active(user, True)
        assert (user.is_active, user.is_verified, user.verified_at) == (True, False, None)
        uow.users.verify(user)
        verified_at, version = user.verified_at, user.version
        assert user.is_verified is True
        assert verified_at is not None
        uow.users.verify(user)  # idempotent: no write, same timestamp
        assert (user.verified_at, user.version) == (verified_at, version)


def test_timestamps_come_back_timezone_aware_utc(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        user = add_user(uow, "olive", password_hash, is_verified=True)
        uow.commit()
    with db.unit_of_work() as uow:
        uow.users.delete(uow.users.get_or_raise(user.id))
        uow.commit()
    with db.unit_of_work(read_only=True) as uow:
        row = uow.users.get_or_raise(user.id, include_deleted=True)
        for name in ("created_at", "updated_at", "verified_at", "deleted_at"):
            value = getattr(row, name)
            assert value is not None, name
            assert value.tzinfo is not None, name
            assert value.utcoffset() == timedelta(0), name
        assert row.created_at <= row.deleted_at  # type: ignore[operator]


# -- the unique indexes as the final guard ------------------------------------------------------


def test_concurrent_registration_is_stopped_by_the_database(
    db: Database, password_hash: str
) -> None:
    with db.unit_of_work() as checking:
        # A registration checks availability...
        assert checking.users.get_by_username("racer") is None
        checking.commit()
    with db.unit_of_work() as other:
        # ...meanwhile another session registers the name...
        add_user(other, "Racer", password_hash)
        other.commit()
    # ...so the first one's insert (its check already passed) hits the index.
    with db.unit_of_work() as uow, pytest.raises(IntegrityError, match="uq_users_username_live"):
        uow.users.create(username="RACER", email="racer2@example.com", password_hash=password_hash)
    with db.unit_of_work() as uow, pytest.raises(IntegrityError, match="uq_users_email_live"):
        uow.users.create(username="racer2", email="racer@example.com", password_hash=password_hash)

    # Database.run turns the driver error into the same Conflict the check gives.
    def insert_duplicate(uow: UnitOfWork) -> User:
        return uow.users.create(
            username="rAcEr", email="racer3@example.com", password_hash=password_hash
        )

    with pytest.raises(Conflict, match=r"^a user with that username already exists$"):
        db.run(insert_duplicate)
    with db.unit_of_work(read_only=True) as uow:
        assert uow.users.count(include_deleted=True) == 1
