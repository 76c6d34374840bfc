"""Unit tests for vutf_cli.security.passwords (argon2id hashing and policy)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from hypothesis import given, settings
from hypothesis import strategies as st

from vutf_cli.errors import ExitCode, InvalidInput
from vutf_cli.security import passwords as passwords_module
from vutf_cli.security.passwords import MAX_LENGTH, PROFILES, Passwords

GOOD = "correct horse battery staple"


@pytest.fixture(scope="module")
def pw() -> Passwords:
    return Passwords("test")


# --- profiles ----------------------------------------------------------------


def test_production_profile_is_rfc_9106_low_memory() -> None:
    assert PROFILES["production"] == RFC_9106_LOW_MEMORY
    # A copy: mutating ours must not be able to weaken argon2's own constant.
    assert PROFILES["production"] is not RFC_9106_LOW_MEMORY


def test_test_profile_is_argon2id_and_cheaper() -> None:
    test, prod = PROFILES["test"], PROFILES["production"]
    assert test.type == prod.type
    assert test.memory_cost < prod.memory_cost
    assert test.time_cost <= prod.time_cost


def test_unknown_profile_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="unknown password hashing profile") as info:
        Passwords("fast")
    assert info.value.exit_code == ExitCode.USAGE
    assert "production" in info.value.message


@pytest.mark.parametrize("bad", [0, -1, MAX_LENGTH + 1])
def test_unusable_min_length_is_rejected(bad: int) -> None:
    with pytest.raises(InvalidInput, match="minimum password length"):
        Passwords("test", min_length=bad)


# --- hash / verify -------------------------------------------------------------


def test_round_trip_with_test_profile(pw: Passwords) -> None:
    digest = pw.hash(GOOD)
    assert digest.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert pw.verify(digest, GOOD)
    assert not pw.verify(digest, GOOD + "!")
    assert not pw.verify(digest, "")


def test_round_trip_with_production_profile() -> None:
    prod = Passwords()
    digest = prod.hash(GOOD)
    assert digest.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert prod.verify(digest, GOOD)
    assert not prod.verify(digest, "wrong password entirely")
    assert not prod.needs_rehash(digest)


def test_hashes_are_salted(pw: Passwords) -> None:
    assert pw.hash(GOOD) != pw.hash(GOOD)


def test_hash_never_contains_the_password(pw: Passwords) -> None:
    assert GOOD not in pw.hash(GOOD)


def test_nfkc_equivalent_passwords_verify(pw: Passwords) -> None:
    # U+FB01 LATIN SMALL LIGATURE FI and full-width digits are NFKC-equal to
    # their plain forms; so is a precomposed vs a combining accent.
    digest = pw.hash("\ufb01sh and chips 123 caf\u00e9")
    assert pw.verify(digest, "fish and chips \uff11\uff12\uff13 cafe\u0301")
    assert Passwords.normalize("\ufb01") == "fi"


def test_verify_is_case_sensitive(pw: Passwords) -> None:
    assert not pw.verify(pw.hash(GOOD), GOOD.upper())


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=8192,t=1,p=1$c2FsdA",
        "$argon2id$v=19$m=8192,t=1,p=1$!!!!$!!!!",
        "$2b$12$abcdefghijklmnopqrstuuPpHbJx0o3H3N6Yx8HckLr5a2hQPU7Q2",
    ],
)
def test_verify_returns_false_on_unparseable_hash(pw: Passwords, garbage: str) -> None:
    assert pw.verify(garbage, GOOD) is False


def test_verify_returns_false_on_lone_surrogate(pw: Passwords) -> None:
    assert pw.verify(pw.hash(GOOD), "bad\ud800password-long-enough") is False


def test_verify_accepts_hash_made_by_plain_argon2(pw: Passwords) -> None:
    # Imported hashes come from other argon2 implementations.
    foreign = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1).hash(GOOD)
    assert pw.verify(foreign, GOOD)


# --- rehash --------------------------------------------------------------------


def test_no_rehash_needed_for_own_hash(pw: Passwords) -> None:
    assert pw.needs_rehash(pw.hash(GOOD)) is False


def test_rehash_needed_when_parameters_change(pw: Passwords) -> None:
    old = pw.hash(GOOD)
    prod = Passwords("production")
    assert prod.needs_rehash(old) is True
    assert prod.verify(old, GOOD), "an old hash still verifies before it is upgraded"
    assert pw.needs_rehash(prod.hash(GOOD)) is True


def test_rehash_needed_for_single_parameter_change(
    pw: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    bumped = dataclasses.replace(PROFILES["test"], time_cost=2)
    monkeypatch.setattr(passwords_module, "PROFILES", {**PROFILES, "bumped": bumped}, raising=True)
    assert Passwords("bumped").needs_rehash(pw.hash(GOOD)) is True


def test_unparseable_hash_needs_rehash(pw: Passwords) -> None:
    assert pw.needs_rehash("garbage") is True


# --- dummy verify ----------------------------------------------------------------


class _CountingHasher:
    """Wraps a real PasswordHasher and records calls."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.hash_calls = 0
        self.verify_calls: list[tuple[str, str]] = []

    def hash(self, password: str) -> str:
        self.hash_calls += 1
        return self.inner.hash(password)

    def verify(self, digest: str, password: str) -> bool:
        self.verify_calls.append((digest, password))
        return self.inner.verify(digest, password)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_verify_dummy_runs_one_real_verify() -> None:
    pw = Passwords("test")
    counter = _CountingHasher(pw._hasher)
    pw._hasher = counter  # type: ignore[assignment]

    pw.verify_dummy("some guess of a password")
    assert counter.hash_calls == 0, "the dummy hash is assembled, never hashed (no extra cost)"
    assert len(counter.verify_calls) == 1
    dummy_hash, tried = counter.verify_calls[0]
    assert tried == "some guess of a password"
    # Same parameters as real hashes, so the work is the same.
    assert dummy_hash.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert pw.needs_rehash(dummy_hash) is False

    pw.verify_dummy("another guess")
    assert counter.hash_calls == 0
    assert len(counter.verify_calls) == 2
    assert counter.verify_calls[1][0] == dummy_hash


def test_verify_dummy_normalizes_like_verify() -> None:
    pw = Passwords("test")
    counter = _CountingHasher(pw._hasher)
    pw._hasher = counter  # type: ignore[assignment]
    pw.verify_dummy("\ufb01sh")
    assert counter.verify_calls[0][1] == "fish"


# --- strength policy ------------------------------------------------------------


def test_check_strength_accepts_long_passphrase(pw: Passwords) -> None:
    pw.check_strength(GOOD)
    pw.check_strength("a" * 15)  # no composition rules
    pw.check_strength("x" * MAX_LENGTH)
    pw.check_strength("pass phrase with spaces and ünïcödé")


def test_check_strength_rejects_short_without_echo(pw: Passwords) -> None:
    secret = "Sh0rt!secret"
    with pytest.raises(InvalidInput) as info:
        pw.check_strength(secret)
    assert "at least 15" in info.value.message
    assert secret not in str(info.value)
    assert secret not in (info.value.hint or "")


def test_min_length_counts_code_points_after_nfkc() -> None:
    pw = Passwords("test", min_length=4)
    # "\ufb01" is one code point but NFKC makes it two ("fi").
    pw.check_strength("\ufb01\ufb01")
    with pytest.raises(InvalidInput):
        pw.check_strength("abc")


def test_min_length_is_configurable() -> None:
    Passwords("test", min_length=20).check_strength("a" * 20)
    with pytest.raises(InvalidInput, match="at least 20"):
        Passwords("test", min_length=20).check_strength("a" * 19)


def test_check_strength_rejects_overlong(pw: Passwords) -> None:
    secret = "y" * (MAX_LENGTH + 1)
    with pytest.raises(InvalidInput, match="too long") as info:
        pw.check_strength(secret)
    assert secret not in str(info.value)


@pytest.mark.parametrize("bad_char", ["\x00", "\x1b", "\t", "\n", "\x7f", "\x85", "\ud800"])
def test_check_strength_rejects_control_characters(pw: Passwords, bad_char: str) -> None:
    secret = f"a long enough passphrase{bad_char}here"
    with pytest.raises(InvalidInput, match="control characters") as info:
        pw.check_strength(secret)
    assert secret not in str(info.value)


def test_hash_does_not_truncate(pw: Passwords) -> None:
    base = "z" * 200
    digest = pw.hash(base + "A")
    assert not pw.verify(digest, base + "B")
    assert pw.verify(digest, base + "A")


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_round_trip_property(password: str) -> None:
    pw = Passwords("test")
    normalized = Passwords.normalize(password)
    try:
        normalized.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates cannot be hashed at all; covered above
    digest = pw.hash(password)
    assert pw.verify(digest, password)
    assert pw.verify(digest, normalized)
    assert not pw.verify(digest, password + "x")


# --- is_argon2id_hash ----------------------------------------------------------


def test_is_argon2id_hash_accepts_real_hashes(pw: Passwords) -> None:
    assert Passwords.is_argon2id_hash(pw.hash(GOOD))
    assert Passwords.is_argon2id_hash(Passwords().hash(GOOD))
    assert Passwords.is_argon2id_hash(
        PasswordHasher(time_cost=2, memory_cost=1024, parallelism=2).hash(GOOD)
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "password",
        # wrong variant or version
        "$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2d$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$v=16$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        # parameters out of order, missing, zero, leading zeros
        "$argon2id$v=19$t=3,m=65536,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$v=19$m=65536,t=3$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$v=19$m=65536,t=0,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$v=19$m=065536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        # memory below 8 KiB per lane, or absurdly large
        "$argon2id$v=19$m=16,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$v=19$m=99999999,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        # salt too short, hash too short, bad base64, padding, missing part
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWI",
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZ",
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA==$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA",
        # trailing junk / whitespace
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA\n",
        " $argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA",
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA$x",
    ],
)
def test_is_argon2id_hash_rejects_malformed(value: str) -> None:
    assert Passwords.is_argon2id_hash(value) is False


def test_is_argon2id_hash_accepts_handwritten_wellformed() -> None:
    value = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcA"
    assert Passwords.is_argon2id_hash(value) is True


def test_an_unusable_hash_matches_nothing_and_checks_at_the_profiles_cost() -> None:
    seen: list[tuple[str, Any]] = []
    pw = Passwords("test", observer=lambda kind, params: seen.append((kind, params)))
    first, second = pw.unusable_hash(), pw.unusable_hash()
    assert first != second
    assert seen == []  # built, not computed
    assert Passwords.is_argon2id_hash(first)
    assert not pw.needs_rehash(first)
    assert pw.weakness(first) is None
    for guess in ("", "correct horse battery staple", first):
        check = pw.check(first, guess)
        assert not check.matches
        assert check.new_hash is None
    assert seen == [("verify", pw.parameters)] * 3
