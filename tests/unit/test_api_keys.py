"""Unit tests for vutf_cli.security.api_keys (format, checksum, digest)."""

from __future__ import annotations

import hashlib
import hmac
import re
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vutf_cli.errors import Denied, ExitCode
from vutf_cli.security.api_keys import (
    BASE62_ALPHABET,
    KEY_LENGTH,
    digests_equal,
    ensure_well_formed,
    generate_api_key,
    is_well_formed,
    key_digest,
    key_prefix,
)

KEY_RE = re.compile(r"vutf_[0-9A-Za-z]{38}")


def _b62(n: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = BASE62_ALPHABET[r] + out
    return out.rjust(6, "0")


def _make_key(body: str) -> str:
    """Independent re-implementation of the documented format."""
    return "vutf_" + body + _b62(zlib.crc32(body.encode()))


def test_alphabet_is_base62() -> None:
    assert len(BASE62_ALPHABET) == 62
    assert len(set(BASE62_ALPHABET)) == 62
    assert BASE62_ALPHABET.isalnum()
    assert BASE62_ALPHABET.isascii()


def test_generated_key_shape() -> None:
    key = generate_api_key()
    assert len(key) == KEY_LENGTH == 43
    assert KEY_RE.fullmatch(key)
    assert key == _make_key(key[5:37]), "checksum is CRC32 of the 32 random characters"


def test_generated_keys_are_distinct() -> None:
    keys = {generate_api_key() for _ in range(200)}
    assert len(keys) == 200


def test_known_vector() -> None:
    body = "0" * 32
    key = _make_key(body)
    assert is_well_formed(key)
    ensure_well_formed(key)
    # Zero-padding: a small CRC still yields 6 characters.
    body_small = "A" * 32
    assert len(_make_key(body_small)) == 43
    assert is_well_formed(_make_key(body_small))


@given(st.text(alphabet=BASE62_ALPHABET, min_size=32, max_size=32))
def test_any_body_with_right_checksum_is_well_formed(body: str) -> None:
    assert is_well_formed(_make_key(body))


def test_generated_keys_are_always_well_formed() -> None:
    for _ in range(500):
        key = generate_api_key()
        assert is_well_formed(key)
        ensure_well_formed(key)


def test_one_character_change_fails_checksum() -> None:
    key = generate_api_key()
    i = 10
    replacement = "a" if key[i] != "a" else "b"
    tampered = key[:i] + replacement + key[i + 1 :]
    assert not is_well_formed(tampered)
    with pytest.raises(Denied, match=r"^API key checksum mismatch$") as info:
        ensure_well_formed(tampered)
    assert info.value.exit_code == ExitCode.DENIED
    assert tampered not in str(info.value)


@given(
    st.integers(min_value=0, max_value=KEY_LENGTH - 1),
    st.characters(codec="utf-8"),
)
def test_any_single_character_mutation_is_rejected(position: int, char: str) -> None:
    key = generate_api_key()
    if key[position] == char:
        return
    mutated = key[:position] + char + key[position + 1 :]
    assert not is_well_formed(mutated)
    with pytest.raises(Denied):
        ensure_well_formed(mutated)


@given(st.text(max_size=60))
def test_is_well_formed_never_raises(text: str) -> None:
    assert isinstance(is_well_formed(text), bool)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "vutf_",
        "VUTF_" + "0" * 38,
        "vutf-" + "0" * 38,
        "vutf_" + "0" * 37,
        "vutf_" + "0" * 39,
        "vutf_" + "0" * 37 + "!",
        "vutf_" + "0" * 37 + "\u0661",  # ARABIC-INDIC DIGIT ONE: a Unicode digit
        " " + _make_key("0" * 32),
        _make_key("0" * 32) + "\n",
    ],
)
def test_malformed_keys_are_rejected_without_echo(bad: str) -> None:
    assert not is_well_formed(bad)
    with pytest.raises(Denied) as info:
        ensure_well_formed(bad)
    assert info.value.message == "malformed API key"


def test_non_string_is_not_well_formed() -> None:
    assert is_well_formed(None) is False  # type: ignore[arg-type]
    with pytest.raises(Denied, match="malformed"):
        ensure_well_formed(12345)  # type: ignore[arg-type]


def test_key_prefix_is_first_12_characters() -> None:
    key = generate_api_key()
    assert key_prefix(key) == key[:12]
    assert key_prefix(key).startswith("vutf_")
    assert len(key_prefix(key)) == 12


def test_digest_with_pepper_is_hmac_sha256() -> None:
    key = generate_api_key()
    expected = hmac.new(b"pepper!", key.encode(), hashlib.sha256).hexdigest()
    assert key_digest(key, "pepper!") == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)


def test_digest_without_pepper_is_sha256() -> None:
    key = generate_api_key()
    expected = hashlib.sha256(key.encode()).hexdigest()
    assert key_digest(key, None) == expected
    assert key_digest(key, "") == expected


def test_digest_depends_on_pepper_and_key() -> None:
    key = generate_api_key()
    assert key_digest(key, "a") != key_digest(key, "b")
    assert key_digest(key, "a") != key_digest(key, None)
    assert key_digest(key, "a") != key_digest(generate_api_key(), "a")
    assert key_digest(key, "a") == key_digest(key, "a")
    assert key not in key_digest(key, None)


def test_digests_equal() -> None:
    a = key_digest(generate_api_key(), "p")
    assert digests_equal(a, a)
    assert digests_equal(a, str(a))
    assert not digests_equal(a, a[:-1] + ("0" if a[-1] != "0" else "1"))
    assert not digests_equal(a, "")
