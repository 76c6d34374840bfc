"""Finishing PostgreSQL's ``row_to_json`` lines into the text of ``audit list -o jsonl``.

``db.audit_sql.postgres_lines_statement`` leaves the server nothing to do per
row but ``row_to_json`` (no guard, no ``to_char``: they cost the server more
than the rendering itself).  Each line is finished here as it arrives
through the COPY, while the server renders the next ones, with a few C-level
byte operations:

* ``row_to_json`` writes the row compact, but the text of its two ``jsonb``
  values (``changes`` and ``metadata``, side by side in the columns' order)
  is spaced (``{"a": 1, "b": [1, 2]}``).  A quote inside a string is always
  escaped, so in a line without a backslash ``"changes":`` and
  ``,"error_message":`` (``jsonb`` puts a space after a comma) can only be
  the keys: what lies between them is the spaced part, and only it is
  compacted, by two replacements (``, "`` -> ``,"`` and ``": `` -> ``":``).
  Neither pattern can occur inside a string there, except at a string's
  edge: a string that ends with ``, `` (its closing quote is followed by
  ``,``, ``}``, ``]`` or ``:``) or starts with ``: `` (its opening quote
  follows a space, ``[``, ``{`` or ``:``).  A remaining ``, `` is a
  separator only in an array of non-strings (a part with a ``[``).
* A number with a fraction is printed by ``jsonb`` as stored (``0.00001``,
  a hand-edited ``1.50``), by Python as its float (``1e-05``, ``1.5``), as
  an object's value or an array's element alike.  Once compacted, such a
  number follows ``":`` or ``[``: any later element of an array follows
  ``, ``, which the replacements keep before anything but a quote, so that
  line is Python's already.  Top-level numbers (``seq``, ``duration_ms``)
  are integers.
* The timestamp is spelled by PostgreSQL in the session's time zone (UTC,
  set by every transaction): ``+00:00`` where vutf writes ``Z``, and the
  fraction's trailing zeros dropped.  ``created_at`` is always followed by
  ``"actor"`` (the columns' order), so ``+00:00","actor":`` is its end.

A number of more than 4300 digits (only an edit by hand stores one) is
more than Python reads: a line long enough to hold one is searched for it,
and one that does is parsed, which fails as ``list`` fails on it.

A line the checks cannot vouch for (any case above the replacements could
misread, a fraction, a NULL timestamp: a time Python cannot hold) is parsed
back instead, which gives exactly the values the driver gives ``list``
(psycopg2 parses the same ``jsonb`` text), and rendered by Python.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from typing import Any, Final, cast

from vutf_cli.db.types import read_stored_json
from vutf_cli.errors import InternalError
from vutf_cli.security.audit_chain import format_timestamp

__all__ = [
    "any_unreadable_number",
    "finish_postgres_line",
    "holds_unreadable_number",
    "seq_of_line",
]

_DIGIT_LIMIT: Final = sys.get_int_max_str_digits()
_TOO_MANY_DIGITS: Final = re.compile(rb"[0-9]{%d}" % (_DIGIT_LIMIT + 1))


def holds_unreadable_number(line: bytes) -> bool:
    """Whether ``line`` may hold a number Python does not read (a run of too many digits).

    Only a line longer than the limit can: the search runs on those alone.
    """
    return len(line) > _DIGIT_LIMIT and _TOO_MANY_DIGITS.search(line) is not None


def any_unreadable_number(lines: list[bytes]) -> bool:
    """:func:`holds_unreadable_number` of any of ``lines`` (a batch: their lengths first)."""
    return max(map(len, lines), default=0) > _DIGIT_LIMIT and any(
        map(holds_unreadable_number, lines)
    )


# The string edges the replacements would misread (module docstring).
_ENDS_WITH_SEPARATOR: Final = re.compile(rb', "[,}\]:]')
# With "[", "{" and ":" made spaces, an opening quote followed by ": " reads ' "  '.
_EDGE_TABLE: Final = bytes.maketrans(b"[{:", b"   ")
_OPENS_WITH_SEPARATOR: Final = b' "  '
# A number with a fraction as an object's value, or as an array's first
# element, after the replacements (module docstring); inside a string it only
# sends the line to Python.  Two patterns: each starts with a literal, which
# the regex engine finds fastest.
_FRACTION: Final = re.compile(rb'":-?[0-9]+\.[0-9]')
_FIRST_IN_ARRAY_FRACTION: Final = re.compile(rb"\[-?[0-9]+\.[0-9]")
_JSON_START: Final = b'"changes":'
_JSON_END: Final = b',"error_message":'
_UTC_SUFFIX: Final = b'+00:00","actor":'
_CREATED_AT: Final = b'"created_at":"'
_POINT: Final = b"."[0]


def finish_postgres_line(line: bytes) -> bytes | dict[str, Any]:
    """A COPY row as its final JSON line (newline-terminated), or its object for Python."""
    if b"\\" in line or holds_unreadable_number(line):
        return parsed_postgres_line(line)
    json_start = line.index(_JSON_START)
    json_end = line.index(_JSON_END, json_start)
    spaced = line[json_start:json_end]  # the jsonb values: the only text to compact
    # One byte past the part: a string ending it is followed by the "," after it.
    misread = _ENDS_WITH_SEPARATOR.search(line, json_start, json_end + 1) is not None
    if misread or _OPENS_WITH_SEPARATOR in spaced.translate(_EDGE_TABLE):
        return parsed_postgres_line(line)
    compact = spaced.replace(b', "', b',"').replace(b'": ', b'":')
    if b"[" in compact and (
        b", " in compact or _FIRST_IN_ARRAY_FRACTION.search(compact) is not None
    ):
        return parsed_postgres_line(line)
    if _FRACTION.search(compact) is not None:
        return parsed_postgres_line(line)
    suffix = line.find(_UTC_SUFFIX, 0, json_start)
    if suffix < 0:  # created_at NULL
        return parsed_postgres_line(line)
    if line[suffix - 7] == _POINT:  # all six digits of the fraction: the common case
        return b"".join(
            (line[:suffix], b"Z", line[suffix + 6 : json_start], compact, line[json_end:])
        )
    # PostgreSQL drops the fraction's trailing zeros (".12345", or none at all).
    seconds_end = line.index(_CREATED_AT) + len(_CREATED_AT) + len("YYYY-MM-DDTHH:MM:SS")
    fraction = line[seconds_end:suffix] or b"."
    if fraction[0] != _POINT or len(fraction) > 7:  # not a time PostgreSQL spells
        return parsed_postgres_line(line)
    return b"".join(
        (
            line[:seconds_end],
            fraction.ljust(7, b"0"),
            b"Z",
            line[suffix + 6 : json_start],
            compact,
            line[json_end:],
        )
    )


def parsed_postgres_line(line: bytes) -> dict[str, Any]:
    """The line's JSON object, with created_at as ``list`` shows it."""
    row = cast(dict[str, Any], read_stored_json(line.decode("utf-8")))
    created_at = row.get("created_at")
    if created_at is None:
        raise InternalError(
            f"audit entry {row.get('seq')}: created_at is outside the years 1 to 9999 "
            "(the row was edited outside vutf)",
            hint="`vutf audit verify` checks the log",
        )
    row["created_at"] = format_timestamp(datetime.fromisoformat(created_at))
    return row


def seq_of_line(line: bytes) -> int:
    """The seq of a line (``"seq":`` is its second key)."""
    start = line.index(b'"seq":') + 6
    return int(line[start : line.index(b",", start)])
