"""BaseRepository against real SQLite and PostgreSQL databases (both, via ``db``).

Users go through UserRepository (its CRUD is BaseRepository's) and API keys
through a tiny BaseRepository subclass defined here, so these tests do not
depend on the API-key repository.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm.exc import DetachedInstanceError

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, User
from vutf_cli.db.repositories.base import BaseRepository, KeysetPage
from vutf_cli.db.repositories.users import UserRepository
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, InvalidInput, NotFound, StaleVersion
from vutf_cli.security.passwords import Passwords

ACTOR = "tester@test"
PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class KeyRepo(BaseRepository[ApiKey]):
    model = ApiKey


@pytest.fixture(scope="module")
def password_hash() -> str:
    """One real argon2id hash shared by every user (hashing per user is slow)."""
    return Passwords("test").hash(PASSWORD)


@pytest.fixture
def make_user(password_hash: str) -> Any:
    def make(uow: UnitOfWork, username: str, **values: Any) -> User:
        values.setdefault("email", f"{username.lower()}@example.com")
        return uow.users.create(username=username, password_hash=password_hash, **values)

    return make


def add_key(uow: UnitOfWork, user: User, name: str, **values: Any) -> ApiKey:
    return KeyRepo(uow.session, actor=uow.actor).create(
        user_id=user.id,
        name=name,
        key_prefix="vutf_abcdefg",
        key_hash=secrets.token_hex(32),
        permissions={"read": True},
        **values,
    )


def ids(rows: list[Any]) -> list[uuid.UUID]:
    return [row.id for row in rows]


# -- create / get --------------------------------------------------------------


def test_create_sets_defaults_and_actor(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "alice")
        assert isinstance(user.id, uuid.UUID)
        uow.commit()
    with db.unit_of_work() as uow:
        loaded = uow.users.get_or_raise(user.id)
        assert loaded.username == "alice"
        assert loaded.created_by == ACTOR
        assert loaded.updated_by == ACTOR
        assert loaded.version == 1
        assert loaded.is_deleted is False
        assert loaded.is_active is True
        assert loaded.created_at.utcoffset() == timedelta(0)


def test_create_without_actor_leaves_audit_columns_empty(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        repo = UserRepository(uow.session, passwords=uow.passwords)
        user = repo.create(username="bob", email="bob@example.com", password_hash=password_hash)
        assert user.created_by is None
        assert user.updated_by is None


def test_create_refuses_unknown_column(db: Database, password_hash: str) -> None:
    with db.unit_of_work() as uow:
        with pytest.raises(InvalidInput, match="unknown field 'nickname' for user"):
            uow.users.create(
                username="carol",
                email="carol@example.com",
                password_hash=password_hash,
                nickname="c",
            )
        assert uow.users.count(include_deleted=True) == 0


def test_get_by_uuid_and_text(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "dave")
        uow.commit()
    with db.unit_of_work() as uow:
        assert uow.users.get(user.id) is not None
        assert uow.users.get(str(user.id)) is not None
        assert uow.users.get(uuid.uuid4()) is None
        missing = uuid.uuid4()
        with pytest.raises(NotFound, match=f"^user {missing} not found$"):
            uow.users.get_or_raise(missing)
        with pytest.raises(InvalidInput, match="invalid user id 'not-a-uuid'"):
            uow.users.get("not-a-uuid")


# -- update ----------------------------------------------------------------------


def test_update_bumps_version_and_records_actor(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "erin")
        uow.commit()
    created_at, updated_at = user.created_at, user.updated_at
    with db.unit_of_work() as uow:
        loaded = uow.users.get_or_raise(user.id)
        uow.users.update(loaded, full_name="Erin Example")
        assert loaded.version == 2
        uow.commit()
    with db.unit_of_work() as uow:
        loaded = uow.users.get_or_raise(user.id)
        assert loaded.full_name == "Erin Example"
        assert loaded.version == 2
        assert loaded.updated_by == ACTOR
        assert loaded.created_at == created_at
        assert loaded.updated_at >= updated_at


@pytest.mark.parametrize("column", ["id", "created_at", "created_by", "version"])
def test_update_refuses_immutable_columns(db: Database, make_user: Any, column: str) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "frank")
        before = getattr(user, column)
        with pytest.raises(InvalidInput, match=f"{column} of a user cannot be changed"):
            uow.users.update(user, **{column: before})
        assert user.version == 1


def test_update_refuses_unknown_column(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "grace")
        with pytest.raises(InvalidInput, match="unknown field 'colour'"):
            uow.users.update(user, colour="blue")


def test_expected_version_mismatch_writes_nothing(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "heidi")
        uow.commit()
    with db.unit_of_work() as uow:
        loaded = uow.users.get_or_raise(user.id)
        with pytest.raises(StaleVersion, match="at version 1, not 7"):
            uow.users.update(loaded, expected_version=7, full_name="Nope")
        assert loaded.full_name is None
        uow.users.update(loaded, expected_version=1, full_name="Heidi")
        assert loaded.version == 2
        uow.commit()
    with db.unit_of_work() as uow:
        assert uow.users.get_or_raise(user.id).full_name == "Heidi"


def test_optimistic_lock_second_writer_fails(db: Database, make_user: Any) -> None:
    """Two sessions load version 1; the first update wins, the second is refused."""
    with db.unit_of_work() as uow:
        user = make_user(uow, "ivan")
        uow.commit()
    # Each session loads the row and ends; the objects keep what they loaded
    # (expire_on_commit=False), i.e. version 1, like a form left open.
    loaded: list[User] = []
    for _ in range(2):
        with db.unit_of_work() as uow:
            loaded.append(uow.users.get_or_raise(user.id))
            uow.commit()
    first, second = loaded
    assert first.version == second.version == 1

    with db.unit_of_work() as uow:
        uow.session.add(first)
        uow.users.update(first, full_name="First writer")
        uow.commit()
    with db.unit_of_work() as uow:
        uow.session.add(second)
        with pytest.raises(StaleVersion, match="changed by someone else"):
            uow.users.update(second, full_name="Second writer")
    with db.unit_of_work() as uow:
        row = uow.users.get_or_raise(user.id)
        assert row.full_name == "First writer"
        assert row.version == 2


def test_optimistic_lock_with_concurrent_transactions(
    db: Database, make_user: Any, backend: str
) -> None:
    """Both transactions open at once (PostgreSQL; SQLite has one writer at a time)."""
    if backend == "sqlite":
        pytest.skip("SQLite serializes writers, so two write transactions cannot interleave")
    with db.unit_of_work() as uow:
        user = make_user(uow, "judy")
        uow.commit()
    with db.unit_of_work() as first_uow, db.unit_of_work() as second_uow:
        first = first_uow.users.get_or_raise(user.id)
        second = second_uow.users.get_or_raise(user.id)
        first_uow.users.update(first, full_name="First writer")
        first_uow.commit()
        with pytest.raises(StaleVersion):
            second_uow.users.update(second, full_name="Second writer")
    with db.unit_of_work() as uow:
        row = uow.users.get_or_raise(user.id)
        assert (row.full_name, row.version) == ("First writer", 2)


# -- delete / restore --------------------------------------------------------------


def test_soft_delete_hides_and_restore_brings_back(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "kim")
        make_user(uow, "lee")
        uow.commit()
    with db.unit_of_work() as uow:
        loaded = uow.users.get_or_raise(user.id)
        uow.users.delete(loaded)
        uow.commit()
    with db.unit_of_work() as uow:
        assert uow.users.get(user.id) is None
        deleted = uow.users.get_or_raise(user.id, include_deleted=True)
        assert deleted.is_deleted is True
        assert deleted.deleted_by == ACTOR
        assert deleted.deleted_at is not None
        assert deleted.deleted_at.utcoffset() == timedelta(0)
        assert uow.users.count() == 1
        assert uow.users.count(include_deleted=True) == 2
        assert not uow.users.exists(username="kim")
        assert uow.users.exists(username="kim", include_deleted=True)
        assert [u.username for u in uow.users.keyset().items] == ["lee"]
        with pytest.raises(Conflict, match="already deleted"):
            uow.users.delete(deleted)
        uow.users.restore(deleted)
        uow.commit()
    with db.unit_of_work() as uow:
        restored = uow.users.get_or_raise(user.id)
        assert (restored.is_deleted, restored.deleted_at, restored.deleted_by) == (
            False,
            None,
            None,
        )
        with pytest.raises(Conflict, match="is not deleted"):
            uow.users.restore(restored)


def test_hard_delete_removes_rows_and_cascades(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "mallory")
        keys = [add_key(uow, user, f"key{i}") for i in range(2)]
        uow.commit()
    with db.unit_of_work() as uow:
        repo = KeyRepo(uow.session, actor=uow.actor)
        repo.delete(repo.get_or_raise(keys[0].id), hard=True)
        assert repo.get(keys[0].id, include_deleted=True) is None
        assert repo.count() == 1
        uow.users.delete(uow.users.get_or_raise(user.id), hard=True)
        uow.commit()
    with db.unit_of_work() as uow:
        assert uow.users.get(user.id, include_deleted=True) is None
        # ON DELETE CASCADE took the key that was never loaded.
        remaining = uow.session.scalar(select(func.count()).select_from(ApiKey))
        assert remaining == 0


# -- filters and counts ---------------------------------------------------------------


def test_unknown_filter_and_order_columns_are_refused(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        make_user(uow, "nina")
        users = uow.users
        with pytest.raises(InvalidInput, match="unknown field 'nope'"):
            users.keyset(filters={"nope": 1})
        with pytest.raises(InvalidInput, match="unknown field 'nope'"):
            users.keyset_rows(filters={"nope": 1})
        with pytest.raises(InvalidInput, match="unknown field 'nope'"):
            users.count(nope=1)
        with pytest.raises(InvalidInput, match="unknown field 'nope'"):
            users.exists(nope=1)
        with pytest.raises(InvalidInput, match="unknown field 'nope'"):
            users.keyset(filters={"nope": None})
        with pytest.raises(InvalidInput, match="unknown field 'nope'"):
            users.keyset(order_by="nope")
        # A relationship is not a column.
        with pytest.raises(InvalidInput, match="unknown field 'api_keys'"):
            users.keyset(filters={"api_keys": []})
        with pytest.raises(InvalidInput, match="cannot page api key rows by 'permissions'"):
            KeyRepo(uow.session).keyset(order_by="permissions")
        with pytest.raises(InvalidInput, match="limit must be at least 1"):
            users.keyset(limit=0)


def test_in_and_is_null_filters(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        make_user(uow, "olga", full_name="Olga")
        make_user(uow, "pat")
        make_user(uow, "quinn", full_name="Quinn")
        make_user(uow, "rob", is_superuser=True)
        users = uow.users

        def names(filters: dict[str, Any]) -> list[str]:
            return [u.username for u in users.keyset(filters=filters, order_by="username").items]

        assert names({"full_name": None}) == ["pat", "rob"]
        assert names({"username": ["olga", "rob", "zed"]}) == ["olga", "rob"]
        assert names({"username": ("pat",)}) == ["pat"]
        assert names({"full_name": {"Quinn", None}}) == ["pat", "quinn", "rob"]
        assert names({"username": []}) == []
        assert names({"is_superuser": True}) == ["rob"]
        assert names({"full_name": None, "is_superuser": False}) == ["pat"]
        assert users.count(full_name=None) == 2
        assert users.count(username=["olga", "quinn"]) == 2
        assert users.exists(is_superuser=True)
        assert not users.exists(username="zed")


def test_filtering_on_is_deleted_includes_deleted_rows(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        gone = make_user(uow, "sam")
        make_user(uow, "tess")
        uow.users.delete(gone)
        assert [u.username for u in uow.users.keyset(filters={"is_deleted": True}).items] == ["sam"]
        assert uow.users.count(is_deleted=True) == 1
        assert [u.username for u in uow.users.keyset().items] == ["tess"]


# -- pagination ------------------------------------------------------------------


def _walk(repo: BaseRepository[Any], limit: int, **kwargs: Any) -> list[Any]:
    """Every row, page by page through next_cursor; checks page sizes on the way."""
    rows: list[Any] = []
    cursor = None
    for _ in range(1000):
        page: KeysetPage[Any] = repo.keyset(cursor=cursor, limit=limit, **kwargs)
        assert len(page.items) <= limit
        rows.extend(page.items)
        if page.next_cursor is None:
            return rows
        assert len(page.items) == limit
        cursor = page.next_cursor
    raise AssertionError("keyset pagination did not end")


@pytest.fixture
def many_users(db: Database, make_user: Any) -> list[tuple[datetime, uuid.UUID, str]]:
    """120 users over 7 distinct timestamps (many ties), 6 of them soft-deleted."""
    created: list[tuple[datetime, uuid.UUID, str]] = []
    with db.unit_of_work() as uow:
        for i in range(120):
            when = T0 + timedelta(minutes=i % 7)
            user = make_user(uow, f"member{i:03d}", created_at=when)
            if i % 20 == 3:
                uow.users.delete(user)
            else:
                created.append((when, user.id, user.username))
        uow.commit()
    assert len(created) == 114
    return created


def test_keyset_visits_every_row_once_in_order(
    db: Database, many_users: list[tuple[datetime, uuid.UUID, str]]
) -> None:
    # UUIDs sort the same in the database and as lower-case text: native uuid
    # compares bytes, SQLite compares the 36-character text.
    ascending = [u[1] for u in sorted(many_users, key=lambda u: (u[0], str(u[1])))]
    with db.unit_of_work(read_only=True) as uow:
        for descending in (False, True):
            expected = ascending[::-1] if descending else ascending
            for limit in (1, 7, 50, 114, 200):
                rows = _walk(uow.users, limit, order_by="created_at", descending=descending)
                assert ids(rows) == expected, f"descending={descending} limit={limit}"


def test_keyset_by_other_column_types(
    db: Database, many_users: list[tuple[datetime, uuid.UUID, str]]
) -> None:
    with db.unit_of_work(read_only=True) as uow:
        by_name = _walk(uow.users, 9, order_by="username")
        assert [u.username for u in by_name] == sorted(u[2] for u in many_users)
        by_id = _walk(uow.users, 11, order_by="id", descending=True)
        assert ids(by_id) == sorted((u[1] for u in many_users), key=str, reverse=True)
        by_version = _walk(uow.users, 13, order_by="version")
        assert sorted(ids(by_version), key=str) == sorted((u[1] for u in many_users), key=str)
        with_deleted = _walk(uow.users, 25, order_by="created_at", include_deleted=True)
        assert len(with_deleted) == 120


def test_keyset_with_filters_and_where(
    db: Database, many_users: list[tuple[datetime, uuid.UUID, str]]
) -> None:
    with db.unit_of_work(read_only=True) as uow:
        wanted = {"member010", "member011", "member050", "member051", "member099"}
        rows = _walk(uow.users, 2, filters={"username": sorted(wanted)})
        assert {u.username for u in rows} == wanted
        rows = _walk(uow.users, 4, where=[User.username.like("member00%")], descending=True)
        assert sorted(u.username for u in rows) == [f"member00{i}" for i in range(10) if i != 3]


def test_keyset_over_a_nullable_column(db: Database, make_user: Any) -> None:
    """NULLs come last ascending and first descending, and are paged through too."""
    with db.unit_of_work() as uow:
        logins: dict[uuid.UUID, datetime | None] = {}
        for i in range(30):
            last_login = None if i % 3 == 0 else T0 + timedelta(hours=i % 4)
            user = make_user(uow, f"nullable{i:02d}", last_login_at=last_login)
            logins[user.id] = last_login
        uow.commit()

    def key(item: tuple[uuid.UUID, datetime | None]) -> tuple[bool, datetime, str]:
        user_id, when = item
        return (when is None, when or T0, str(user_id))

    ascending = [user_id for user_id, _ in sorted(logins.items(), key=key)]
    with db.unit_of_work(read_only=True) as uow:
        for limit in (1, 4, 10):
            forward = _walk(uow.users, limit, order_by="last_login_at")
            assert ids(forward) == ascending, f"limit={limit}"
            backward = _walk(uow.users, limit, order_by="last_login_at", descending=True)
            assert ids(backward) == ascending[::-1], f"limit={limit}"


def test_keyset_is_stable_when_rows_are_added_between_pages(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        for i in range(10):
            make_user(uow, f"early{i}", created_at=T0)
        uow.commit()
    with db.unit_of_work(read_only=True) as uow:
        first = uow.users.keyset(limit=5)
        seen = [u.username for u in first.items]
    with db.unit_of_work() as uow:
        # Sorts after every row already seen: the next pages must pick it up.
        make_user(uow, "later", created_at=T0 + timedelta(days=1))
        uow.commit()
    with db.unit_of_work(read_only=True) as uow:
        second = uow.users.keyset(limit=5, cursor=first.next_cursor)
        third = uow.users.keyset(limit=5, cursor=second.next_cursor)
        seen += [u.username for u in second.items + third.items]
    assert len(seen) == len(set(seen)) == 11
    assert seen[-1] == "later"
    assert third.next_cursor is None


def _forge(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_malformed_cursors_are_invalid_input(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        for i in range(3):
            make_user(uow, f"cursor{i}")
        good = uow.users.keyset(limit=1).next_cursor
        assert good is not None
        assert len(uow.users.keyset(limit=1, cursor=good).items) == 1
        payload = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
        bad_cursors = [
            "",
            "not base64 !!",
            "%%%",
            base64.urlsafe_b64encode(b"\xff\xfe").decode(),
            _forge("just a string"),
            _forge({"o": "created_at"}),
            _forge({**payload, "v": ["s", "yesterday"]}),  # wrong type for a datetime
            _forge({**payload, "v": ["t", "2026-01-01T00:00:00"]}),  # naive
            _forge({**payload, "v": ["n", None]}),  # created_at is not nullable
            _forge({**payload, "k": ["u", "not-a-uuid"]}),
            _forge({**payload, "k": ["n", None]}),
            _forge({**payload, "o": "username"}),  # a cursor of another ordering
            "A" * 5000,
        ]
        for bad in bad_cursors:
            with pytest.raises(InvalidInput, match="invalid cursor"):
                uow.users.keyset(limit=1, cursor=bad)
        # Same column, other direction: also another ordering.
        with pytest.raises(InvalidInput, match="invalid cursor"):
            uow.users.keyset(limit=1, cursor=good, descending=True)
        with pytest.raises(InvalidInput, match="invalid cursor"):
            uow.users.keyset(limit=1, cursor=good, order_by="updated_at")


# -- eager loading -------------------------------------------------------------------


def test_eager_loading_survives_the_session(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "owner")
        for i in range(3):
            add_key(uow, user, f"key{i}")
        uow.commit()
    with db.unit_of_work(read_only=True) as uow:
        loaded = uow.users.get_or_raise(user.id, load=["api_keys"])
        plain = uow.users.get_by_username("owner")
        assert plain is loaded  # one identity map
        paged = uow.users.keyset(load=("api_keys",))
        assert "api_keys" not in inspect(loaded).unloaded
        uow.session.expunge_all()
    assert sorted(k.name for k in loaded.api_keys) == ["key0", "key1", "key2"]
    assert len(paged.items[0].api_keys) == 3

    with db.unit_of_work(read_only=True) as uow:
        lazy = uow.users.get_or_raise(user.id)
        assert "api_keys" in inspect(lazy).unloaded
        uow.session.expunge(lazy)
    with pytest.raises(DetachedInstanceError):
        _ = lazy.api_keys


def test_unknown_relationship_is_invalid_input(db: Database, make_user: Any) -> None:
    with db.unit_of_work() as uow:
        user = make_user(uow, "rel")
        with pytest.raises(InvalidInput, match="unknown relationship 'keys' for user"):
            uow.users.get(user.id, load=["keys"])
        with pytest.raises(InvalidInput, match="unknown relationship 'email'"):
            uow.users.keyset(load=["email"])
        with pytest.raises(InvalidInput, match="unknown relationship"):
            KeyRepo(uow.session).keyset(load=["owner"])
