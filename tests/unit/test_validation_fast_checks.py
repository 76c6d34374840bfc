"""The character checks of email, full name and description validation, done with str methods.

``normalize_email`` asks ``not email.isprintable() or " " in email`` where it
asked, character by character, ``ch.isspace() or not ch.isprintable()``;
full names and descriptions skip the per-character category look-up when
``str.isprintable()`` is true.  Both rest on how the running Python's Unicode
database classifies characters, so they are checked for every code point,
and the functions are compared with their former bodies on generated text.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vutf_cli.domain.validation import (
    identity_key,
    normalize_email,
    shorten_for_message,
    validate_description,
    validate_full_name,
)
from vutf_cli.errors import InvalidInput

FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def test_every_whitespace_character_but_space_is_unprintable() -> None:
    mismatches = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if (chr(code).isspace() or not chr(code).isprintable())
        != (not chr(code).isprintable() or chr(code) == " ")
    ]
    assert mismatches == []


def test_every_forbidden_name_character_is_unprintable() -> None:
    printable_but_forbidden = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if chr(code).isprintable()
        and (unicodedata.category(chr(code)) in FORBIDDEN_CATEGORIES or chr(code) in BIDI_CONTROLS)
    ]
    assert printable_but_forbidden == []


def test_the_characters_named_in_the_review() -> None:
    for ch in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u3000\u202e\u2066":
        assert not ch.isprintable(), repr(ch)
    assert " ".isprintable()


# -- the former bodies, verbatim (but for NFKC, issue 11 item 10) ---------------------------
def _show(value: str) -> str:
    if len(value) > 80:
        return repr(value[:80]) + f" (truncated, {len(value)} characters)"
    return repr(value)


_DOMAIN_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _email_error(value: str, reason: str) -> InvalidInput:
    return InvalidInput(f"invalid email address {_show(value)}: {reason}")


def former_normalize_email(value: str) -> str:
    # The one change since: spellings that render alike are one address (NFKC first).
    email = identity_key(value)
    if not email:
        raise _email_error(value, "it is empty")
    if len(email) > 254:
        raise _email_error(value, "it is longer than 254 characters")
    if any(ch.isspace() or not ch.isprintable() for ch in email):
        raise _email_error(value, "it contains whitespace or control characters")
    if email.count("@") != 1:
        raise _email_error(value, "it must contain exactly one '@'")
    local, domain = email.split("@")
    if not 1 <= len(local) <= 64:
        raise _email_error(value, "the part before '@' must be 1 to 64 characters")
    labels = domain.split(".")
    if len(labels) < 2:
        raise _email_error(value, "the domain must contain a dot (e.g. example.org)")
    if not all(_DOMAIN_LABEL_RE.fullmatch(label) for label in labels):
        raise _email_error(
            value,
            "domain labels must be a-z, 0-9 and '-', not starting or ending with '-' "
            "(international domains in punycode)",
        )
    return email


def former_validate_full_name(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 255:
        raise InvalidInput(f"full name too long: at most 255 characters (got {len(value)})")
    for ch in value:
        if unicodedata.category(ch) in FORBIDDEN_CATEGORIES or ch in BIDI_CONTROLS:
            raise InvalidInput(
                f"invalid full name {_show(value)}: control characters "
                f"(here U+{ord(ch):04X}) are not allowed"
            )
    return value


def former_validate_description(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = value.strip()
    if not cleaned:
        return None
    if len(cleaned) > 1000:
        raise InvalidInput(f"description too long: at most 1000 characters (got {len(cleaned)})")
    for ch in cleaned:
        if unicodedata.category(ch) in FORBIDDEN_CATEGORIES or ch in BIDI_CONTROLS:
            raise InvalidInput(
                f"invalid description {shorten_for_message(cleaned)}: control characters "
                f"(here U+{ord(ch):04X}) are not allowed"
            )
    return cleaned


def outcome(function: Callable[[], Any]) -> Any:
    try:
        return ("ok", function())
    except InvalidInput as exc:
        return ("error", str(exc))


AWKWARD = st.characters(categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Co", "Cn"])
TEXTS = st.text(st.characters(codec=None) | AWKWARD | st.sampled_from(" @.a-"), max_size=30)
EMAILS = st.builds(
    lambda local, domain: f"{local}@{domain}",
    TEXTS,
    st.sampled_from(["example.org", "EXAMPLE.org ", "ex ample.org", "x.y\u00a0", "a.b\u2028"]),
)


@settings(max_examples=500)
@given(TEXTS | EMAILS)
def test_normalize_email_is_unchanged(value: str) -> None:
    assert outcome(lambda: normalize_email(value)) == outcome(lambda: former_normalize_email(value))


@settings(max_examples=500)
@given(TEXTS | st.text(max_size=300) | st.text(min_size=990, max_size=1010))
def test_full_name_and_description_rules_are_unchanged(value: str) -> None:
    assert outcome(lambda: validate_full_name(value)) == outcome(
        lambda: former_validate_full_name(value)
    )
    assert outcome(lambda: validate_description(value)) == outcome(
        lambda: former_validate_description(value)
    )
