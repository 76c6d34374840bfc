"""Make untrusted text safe to show: in a terminal (:func:`inert`) and in a
spreadsheet (:func:`csv_safe`).

Usernames, emails, display names and audit details come from whoever wrote
them.  Printed raw, ``\\x1b[2J`` clears the operator's screen, an OSC 8
sequence turns text into a hyperlink to anywhere, and a bidi override
(``U+202E``) makes ``evil\\u202egpj.exe`` read as ``evilexe.jpg`` ("Trojan
Source", CVE-2021-42574).  In a CSV opened by a spreadsheet, ``=HYPERLINK(...)``
or ``=cmd|...`` in a cell is a formula, not text.

Neither function imports rich.
"""

from __future__ import annotations

import re

from vutf_cli.domain.csv_cells import escape_cell

__all__ = ["csv_safe", "inert"]


def _build_escapes() -> dict[int, str]:
    table: dict[int, str] = {}
    # C0 controls (including ESC, tab, newline, CR), DEL and the C1 controls:
    # U+009B is a one-character CSI on terminals that honour 8-bit controls.
    for code in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)):
        table[code] = f"\\x{code:02x}"
    # Tab and newline are not dangerous, but inside a table cell they break
    # the grid; show them the way Python writes them.
    table[0x09] = "\\t"
    table[0x0A] = "\\n"
    table[0x0D] = "\\r"
    # Bidi embeddings/overrides (LRE RLE PDF LRO RLO) and isolates (LRI RLI FSI PDI).
    for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)):
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES = _build_escapes()
# The same characters as a regex class, built from the table so the two cannot
# disagree: most text has nothing to escape, and a search (a C loop) lets it
# through untouched without the per-character translate.
_UNSAFE = re.compile("[" + "".join(re.escape(chr(code)) for code in sorted(_ESCAPES)) + "]")


def inert(text: str) -> str:
    """Replace every control and bidi-override character with a visible escape.

    ``"a\\x1b[2Jb"`` becomes the eight printable characters ``a\\x1b[2Jb``.
    Escapes are for display only: a literal backslash in the input is left as
    is, so ``\\x1b`` typed by a user and a real ESC look the same - both are
    harmless, which is the point.  Machine formats (json, csv) carry the exact
    data instead.
    """
    if _UNSAFE.search(text) is None:
        return text
    return text.translate(_ESCAPES)


def csv_safe(cell: str) -> str:
    """A text cell as ``-o csv`` writes it (the escape rule: :mod:`vutf_cli.domain.csv_cells`)."""
    return escape_cell(cell)
