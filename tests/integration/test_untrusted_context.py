"""What a client sends along with an attempt never decides it (security review, finding 1).

A user agent longer than its column, an ``X-Forwarded-For`` chain passed as
the ip, a NUL or a lone surrogate in a name: the attempt is decided and
audited as usual (the context fitted to its column, ``audit_trail.fit_text``),
a wrong password is counted for lockout, and the caller gets Denied or the
user, never InvalidInput.  Through the Store, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_store import PASSWORD, audit_rows, open_store
from vutf_cli.store import Denied, Store

LONG_AGENT = "Mozilla/5.0 (Linux; Android 14) " + "x" * 300
FORWARDED = ", ".join(f"2001:db8::{n:x}" for n in range(1, 9))  # longer than 45


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with open_store(database_url) as opened:
        # A superuser: a key carries no scope its owner lacks.
        opened.create_user("carol", "carol@example.org", password=PASSWORD, is_superuser=True)
        yield opened


def logins(url: str) -> list[dict[str, object]]:
    return [row for row in audit_rows(url) if row["action"] == "user.login"]


def test_an_oversized_context_is_cut_with_a_marker_and_the_attempt_decided(
    store: Store, database_url: str
) -> None:
    with pytest.raises(Denied):
        store.authenticate("carol", "wrong password!", ip=FORWARDED, user_agent=LONG_AGENT)
    assert store.get_user("carol").failed_login_count == 1  # counted for lockout
    user = store.authenticate("carol", PASSWORD, ip=FORWARDED, user_agent=LONG_AGENT)
    assert user.username == "carol"

    rows = logins(database_url)
    assert [(row["status"], (row["changes"] or {}).get("reason")) for row in rows] == [
        ("failure", "wrong_password"),
        ("success", None),
    ]
    for row in rows:
        assert row["user_agent"] == LONG_AGENT[:254] + "\u2026"
        assert row["ip_address"] == FORWARDED[:44] + "\u2026"


def test_a_nul_or_a_lone_surrogate_in_the_name_is_an_unknown_user_on_the_record(
    store: Store, database_url: str
) -> None:
    for name in ("carol\x00", "carol\udc80"):
        with pytest.raises(Denied):
            store.authenticate(name, PASSWORD, user_agent="agent\x00with a NUL")
    rows = logins(database_url)
    assert [(row["changes"] or {}).get("identifier") for row in rows] == [
        "carol\ufffd",
        "carol\ufffd",
    ]
    assert {(row["status"], (row["changes"] or {}).get("reason")) for row in rows} == {
        ("failure", "unknown_user")
    }
    assert {row["user_agent"] for row in rows} == {"agent\ufffdwith a NUL"}


def test_a_key_checked_with_an_oversized_context_is_decided_and_recorded(
    store: Store, database_url: str
) -> None:
    key = store.create_key("carol", "ci", scopes=["targets:read"]).plaintext
    assert store.verify_key(key, ip=FORWARDED, user_agent=LONG_AGENT).username == "carol"
    with pytest.raises(Denied):
        store.verify_key(key, required_scope="sessions:write", user_agent=LONG_AGENT + "\x00")
    uses = [row for row in audit_rows(database_url) if row["action"] == "api_key.use"]
    assert [row["status"] for row in uses] == ["success", "failure"]
    assert {row["user_agent"] for row in uses} == {LONG_AGENT[:254] + "\u2026"}
