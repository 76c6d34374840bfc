"""Reading the documents a user hands vutf: the one reader of every input file.

Import files (``users import``), identity and plan files (``plan``,
``apply``), user lists (``users add-role --from-file``) and the config file
are text, and text never holds a NUL byte (JSON, YAML, TOML and CSV all
refuse the raw character, and no stored name may hold one).  So a document
is read in chunks and refused at the first NUL, exit 2: a source that never
ends, such as ``/dev/zero`` or a device named by mistake, is refused at once
instead of being read until memory runs out (MemoryError, exit 1, or the
whole machine's memory).  A document may legitimately be hundreds of
megabytes, so there is no size bound; an endless stream of text (``yes |``)
is read as any tool reads it, until Ctrl-C.

Every JSON document is parsed by :func:`parse_json` (or, value by value,
:func:`decode_json`), which gives one :class:`JsonRefused` with the reason
for every way the text cannot be read.  A JSON object with a key twice is
one (:func:`unique_keys`): json keeps the last one, which would silently
pick one of two usernames, or the ``superuser: true`` a reviewer did not
see.

Once parsed, a document has the shape of one of vutf's formats or none:
:func:`check_document_shape` refuses one nested deeper than any of them is
(:data:`MAX_NESTING`; deeper ones ended in RecursionError, exit 1, in
whatever walked them next) and, for YAML, one whose aliases expand it far
beyond its size (a "billion laughs" file of a few hundred bytes kept
``vutf plan`` busy for minutes, taking memory as it went).
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO

from vutf_cli.errors import InvalidInput

__all__ = [
    "MAX_NESTING",
    "NUMBER_TOO_LONG",
    "DuplicateKey",
    "JsonRefused",
    "check_document_shape",
    "decode_json",
    "parse_json",
    "read_document",
    "read_document_stream",
    "unique_keys",
]

_STDIN: Final = "-"
# Large enough that a big file is read in few calls, small enough that a source
# of NULs is refused after one.
_CHUNK_BYTES: Final = 1 << 20
# The deepest any vutf document goes is a plan file's identity (about six levels).
MAX_NESTING: Final = 64
# What json and yaml raise ValueError for: Python reads at most this many digits into an
# int (sys.set_int_max_str_digits), a guard against quadratic conversion time.
NUMBER_TOO_LONG: Final = (
    f"a number too long to read (more than {sys.get_int_max_str_digits()} digits)"
)


def read_document(source: str | Path) -> bytes:
    """The bytes of the document at ``source`` (``-``: stdin), refused at a NUL byte.

    Messages call it by its path, or ``stdin``.  A file that cannot be opened
    or read is exit 2 naming it.
    """
    if str(source) == _STDIN:
        stream = sys.stdin
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text stream put in place of stdin by a caller
            return read_document_stream(_Encoded(stream), "stdin")
        return read_document_stream(buffer, "stdin")
    label = str(source)
    try:
        with Path(source).open("rb") as handle:
            return read_document_stream(handle, label)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise InvalidInput(
            f"cannot read {label}: {getattr(exc, 'strerror', None) or exc}"
        ) from None


def read_document_stream(stream: BinaryIO | _Encoded, name: str) -> bytes:
    """Everything ``stream`` holds, read in chunks; exit 2 at the first NUL byte."""
    chunks: list[bytes] = []
    while chunk := stream.read(_CHUNK_BYTES):
        nul = chunk.find(b"\0")
        if nul >= 0:
            wide = None if chunks else _wide_encoding(chunk)
            if wide is not None:  # Excel's "Unicode text", Notepad's "Unicode"
                raise InvalidInput(
                    f"{name} is {wide} text; vutf reads UTF-8",
                    hint=f"save it as UTF-8, or convert it: iconv -f {wide} -t UTF-8",
                )
            line = sum(read.count(b"\n") for read in chunks) + chunk.count(b"\n", 0, nul) + 1
            raise InvalidInput(
                f"{name} is not a text document: line {line} holds a NUL byte",
                hint="give a text file (json, jsonl, csv, yaml, toml), not a device or binary file",
            )
        chunks.append(chunk)
    return b"".join(chunks)


# UTF-32's marks first: UTF-32-LE's begins with UTF-16-LE's.
_WIDE_MARKS: Final = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _wide_encoding(start: bytes) -> str | None:
    """UTF-16 or UTF-32 when ``start`` begins with its byte order mark (text with NULs)."""
    return next((name for mark, name in _WIDE_MARKS if start.startswith(mark)), None)


class _Encoded:
    """A text stream read as UTF-8 bytes, chunk by chunk."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def read(self, size: int) -> bytes:
        return self._stream.read(size).encode("utf-8")


def check_document_shape(document: Any, source: str, *, max_values: int | None = None) -> None:
    """InvalidInput (exit 2) when ``document`` (parsed JSON or YAML) nests deeper than
    :data:`MAX_NESTING`, or holds more than ``max_values`` values once its YAML aliases are
    followed (each alias counts again, as everything that walks the document meets it)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    seen = 0
    while pending:
        value, depth = pending.pop()
        seen += 1
        if max_values is not None and seen > max_values:
            raise InvalidInput(
                f"{source}: its aliases expand it to more than {max_values} values: "
                "not a vutf document",
                hint="write the repeated parts out, or use fewer YAML aliases (*name)",
            )
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth >= MAX_NESTING and children:
            raise InvalidInput(f"{source}: nested deeper than {MAX_NESTING} levels")
        pending.extend((child, depth + 1) for child in children)


class DuplicateKey(ValueError):
    """A key repeated in one JSON object (or YAML mapping): ``key``, cut to 60 characters."""

    def __init__(self, key: str) -> None:
        self.key = key[:60]
        super().__init__(f"the key {self.key!r} appears twice in one object")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` ``object_pairs_hook``: the object, or :class:`DuplicateKey`."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return value


class JsonRefused(Exception):
    """Why a JSON text cannot be read: ``reason``, one line, and where when json says.

    ``lineno`` and ``colno`` count in the text parsed (1-based), as
    ``json.JSONDecodeError`` does; None for a reason found after parsing
    (a repeated key, a number too long, nesting too deep).
    """

    def __init__(self, reason: str, *, lineno: int | None = None, colno: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lineno = lineno
        self.colno = colno

    @property
    def where(self) -> str:
        """``:LINE:COLUMN`` when known, else empty: for ``FILE{where}: ...`` messages."""
        return "" if self.lineno is None else f":{self.lineno}:{self.colno}"


_DECODER: Final = json.JSONDecoder(object_pairs_hook=unique_keys)


def parse_json(text: str, *, allow_repeated_keys: bool = False) -> Any:
    """The one JSON document ``text`` holds, as ``json.loads`` reads it; keys unique.

    Every way it cannot be read is :class:`JsonRefused` with the reason: json's
    own syntax errors, a key twice in one object, nesting too deep for
    Python's recursion, a number past Python's digit limit.
    ``allow_repeated_keys``: the last of a repeated key counts, as json has it
    (for stored values, which vutf wrote, read back as they are).
    """
    with _refusing():
        return json.loads(text) if allow_repeated_keys else _DECODER.decode(text)


def decode_json(text: str, index: int) -> tuple[Any, int]:
    """The JSON value at ``index`` of ``text`` and the index after it (``raw_decode``).

    For a document read value by value (an import's array); refusals as
    :func:`parse_json`.
    """
    with _refusing():
        return _DECODER.raw_decode(text, index)


@contextmanager
def _refusing() -> Iterator[None]:
    try:
        yield
    except json.JSONDecodeError as exc:
        raise JsonRefused(exc.msg, lineno=exc.lineno, colno=exc.colno) from None
    except DuplicateKey as exc:
        raise JsonRefused(str(exc)) from None
    except RecursionError:  # json recurses once per level of nesting
        raise JsonRefused(f"nested deeper than {MAX_NESTING} levels") from None
    except ValueError:  # what else json raises: int() past its digit limit
        raise JsonRefused(NUMBER_TOO_LONG) from None
